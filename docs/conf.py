"""Sphinx configuration of gradbench's documentation (``bash scripts/docs``).

Offline by design: no intersphinx (nothing is fetched while building), every page opens
from disk. Built warning-free and nitpicky by tests/test_docs.py.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the checkout's gradbench, also without an install

import gradbench  # noqa: E402

project = "gradbench"
author = "gradbench's authors"
copyright = "gradbench's authors, MIT licence"
version = release = gradbench.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style docstrings
    "sphinxarg.ext",  # the command-line reference, from the argparse parsers
    "gradbench_docs",  # docs/_ext: the result fields, generated from the checked loader
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3  # [text](page.md#a-heading) resolves, and is checked
suppress_warnings = []

html_theme = "furo"
html_title = f"gradbench {release}"
html_static_path = []
html_show_sourcelink = False
html_last_updated_fmt = None
html_copy_source = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# the type hints of the parameters the docstring documents; none repeated beside its Returns
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = True
napoleon_preprocess_types = True
# the informal types numpydoc docstrings name
napoleon_type_aliases = {
    "MLP": "gradbench.MLP",
    "Method": "gradbench.Method",
    "Dataset": "gradbench.datasets.Dataset",
}

# Nitpicky: every cross-reference must resolve. Without intersphinx (the build is offline),
# references into the standard library and other libraries (NumPy, pandas, ...) have nothing
# to resolve against, and the docstrings' informal types ("array_like", "sequence of int",
# "shape (B, n)") are words, not objects: those alone are let through. A reference to one
# of gradbench's objects by another of its names (its defining module's, or a name relative
# to the module the docstring is in) resolves to where that same object is documented
# (docs/_ext/gradbench_docs.py); any other must name a documented object.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|pandas|pd|matplotlib|scipy|numba|jinja2|collections|typing|"
               r"pathlib|os|datetime|argparse|types)\..*"),
    (r"py:.*", r"ndarray|DataFrame|Series|Path|array_like|array-like|sequence|callable|"
               r"iterable|optional|default|path|str or Path|u?int\d+|float\d+|complex\d+"),
    # a type spec that is not a dotted name is prose ("shape (B, n)", "(B,) integer labels")
    (r"py:.*", r".*[\s()\[\]`'\"].*"),
]


def _napoleon_leaves_data_comments_alone():
    """napoleon reads the first line of a data or attribute docstring as "type: text";
    gradbench's ``#:`` comments are prose ("A series: one method's cases ..."), so napoleon
    formats the docstrings of functions and classes only."""
    from sphinx.ext import napoleon

    process = napoleon._process_docstring

    def functions_and_classes(app, what, name, obj, options, lines):
        if what not in ("data", "attribute"):
            process(app, what, name, obj, options, lines)

    napoleon._process_docstring = functions_and_classes


_napoleon_leaves_data_comments_alone()
