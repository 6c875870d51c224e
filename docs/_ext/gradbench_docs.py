"""Sphinx extension of gradbench's documentation: the result files' fields, generated.

``{gradbench-fields}`` renders the table of every field gradbench's checked loaders read,
with its type, whether it is required, the check applied and the schemas that read it,
by *running* the loaders (``gradbench.results``) with their field checks recorded: on the
committed example files (schemas 1 and 2, and the training records) and on a document with
every optional field, built here through the writer's API
(:class:`gradbench.results.Document`), as a file of each schema the loader reads. The
loaders' code is the schema; this table cannot drift from it.

The directive's content gives each field's meaning, one ``path: meaning`` line each. The
build fails (an error, so ``-W`` stops it) when a field the loader reads has no meaning
there, when a meaning names a field the loader does not read, or when a field name written
in the loaders' source (``gradbench/results/fields.py``, ``training.py``) was never reached
while recording (the documents here would have fallen behind the code).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import tempfile
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "reports" / "example"
#: The committed example files the recording reads, per format, with the schema each has.
BENCHMARK_FILES = {1: "vm-2core-default-20261123-013605.json",
                   2: "zen5-peers-default-20261123-134538.json"}
CHECKS = ("text", "integer", "number", "choice", "obj", "get", "fraction")


def _kinds(kinds) -> str:
    names = {dict: "object", list: "list", str: "string", int: "integer", float: "number",
             bool: "true/false"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def _describe(check: str, args: tuple, kw: dict) -> tuple[str, bool, str]:
    """(type, optional, the check applied) of one recorded field check."""
    optional = bool(kw.get("optional", False))
    if check == "text":
        return "string", optional, f"1 to {kw.get('max_len', 200)} characters"
    if check == "integer":
        return "integer", optional, f">= {kw.get('lo', 0)}"
    if check == "number":
        return "number", optional, "finite, > 0" if kw.get("positive") else "finite, >= 0"
    if check == "fraction":
        return "number", optional, "in [0, 1]"
    if check == "choice":
        choices = kw.get("choices", args[3] if len(args) > 3 else ())
        return "string", optional, "one of " + ", ".join(f"``{c}``" for c in choices)
    if check == "obj":
        return "object", optional, ""
    kinds = kw.get("kinds", args[3] if len(args) > 3 else ())
    return _kinds(kinds), optional, ""


@contextlib.contextmanager
def recording(found: dict, version):
    """Every field check of ``gradbench.results`` recorded into ``found`` while inside:
    path -> {"type", "optional", "check", "schemas"}; the outermost check of a field only
    (``fraction`` calls ``number`` calls ``get``)."""
    from gradbench.results import schema, training

    saved = {}
    depth = [0]

    def wrap(cls, name):
        original = cls.__dict__[name]

        @functools.wraps(original)
        def checked(self, d, key, where, *args, **kw):
            if depth[0] == 0:
                path = re.sub(r"\[\d+\]", "[]", f"{where}.{key}" if where else key)
                kind, optional, check = _describe(name, (d, key, where, *args), kw)
                entry = found.setdefault(path, {"type": kind, "optional": optional,
                                                "check": check, "schemas": set()})
                entry["optional"] = entry["optional"] or optional
                entry["schemas"].add(version(self.path))
            depth[0] += 1
            try:
                return original(self, d, key, where, *args, **kw)
            finally:
                depth[0] -= 1

        saved[(cls, name)] = original
        setattr(cls, name, checked)

    for name in CHECKS:
        for cls in (schema.Fields, training._Fields):
            if name in cls.__dict__:
                wrap(cls, name)
    try:
        yield found
    finally:
        for (cls, name), original in saved.items():
            setattr(cls, name, original)


def current_document(folder: Path) -> Path:
    """A result file of the current schema with every optional field present, written
    through the writer's API (one case timed, one skipped by the budget, a GPU section,
    the accuracy figures, a signal)."""
    from gradbench import costmodel, methods, results

    doc = results.Document.create(
        machine_info={"label": "docs", "cpu_model": "a CPU", "cores": 2, "node": "host",
                      "python_version": "3.12.0", "numba": "0.61", "llvmlite": "0.44",
                      "numpy": "2.2", "threading_layer": "omp", "svml": False,
                      "blas": [{"internal_api": "openblas", "version": "0.3.28",
                                "num_threads": 2}],
                      "calibration": dict.fromkeys(results.RATES, 50.0)},
        code={"commit": "0" * 40, "commit_time": "2026-11-22T20:00:00+00:00", "dirty": False,
              "git_error": "none"},
        label="docs", profile="quick", budget=52.0, threads=2, version="0.1.0",
        pytest_benchmark="5.1.0")
    sizes, m = (16, 8, 4), methods.get("backprop")
    info = results.case_info(m, sizes, 8, "float64", 2,
                             costmodel.predict("backprop", sizes, 8, "float64"), classic=False)
    info.update(blas_threads=1, compile_seconds=0.1, predicted_seconds=0.001,
                mode="calibrated", library="numpy 2.2", thread_control="threadpoolctl",
                check_max_abs_err=1e-12, check_ratio=0.01, pid=1)
    doc.add_case(results.timing_record([1e-4, 1.1e-4, 1.2e-4], info, "test_case[docs]"))
    doc.add_not_timed(info, "budget", "predicted 9 s, more than was left", 9.0)
    doc.set_device("cuda", {"description": {"name": "a GPU"},
                            "calibration": dict.fromkeys(results.RATES, 500.0)})
    doc.set_accuracy({"step_curve": [{"scheme": "central", "dtype": "float64", "h": 1e-5,
                                      "error": 1e-10, "default_h": 6e-6}],
                      "check": {"network": "784-50-10", "h": 6e-6, "threshold": 6.1e-6,
                                "loss": 2.3, "passed": True, "strategy": "naive",
                                "rows": [{"tensor": "W1", "shape": [784, 50],
                                          "max_rel_err": 1e-7, "median_rel_err": 1e-8,
                                          "max_abs_err": 1e-10, "n_over": 0,
                                          "passed": True}]}})
    doc.set_status("interrupted", spent=1.0, wall=2.0, signal="SIGTERM")
    return doc.save(folder / "docs-quick.json")


def variants(path: Path) -> list[Path]:
    """The result file ``path`` (of the current schema, every optional field present) as a
    file of every schema this version reads, each also without a machine label (the loader
    then names the machine by pytest-benchmark's ``node``): what the loader reads of each
    schema, wherever it reads a field only for some schemas or only when another is absent."""
    import json

    from gradbench import results

    out = []
    for version in results.READABLE:
        for labelled in (True, False):
            data = json.loads(path.read_text())
            data["gradbench"]["schema_version"] = version
            for case in [*data["benchmarks"], *data["gradbench"]["skipped"]]:
                info = case.get("extra_info", case)
                info["gradbench_schema"] = version
            if not labelled:
                del data["machine_info"]["label"]
            name = f"docs-schema{version}{'' if labelled else '-unlabelled'}.json"
            out.append(results.write(path.with_name(name), data))
    return out


def paths(x, prefix: str = ""):
    """Every field path of parsed JSON, a list's items as ``[]``."""
    if isinstance(x, dict):
        for k, v in x.items():
            p = f"{prefix}.{k}" if prefix else k
            yield p
            yield from paths(v, p)
    elif isinstance(x, list):
        for v in x:
            yield from paths(v, f"{prefix}[]")


def record(fmt: str) -> tuple[dict, set]:
    """(path -> what the loaders check, every field path present in the files read), for
    the ``benchmark`` or ``training`` format."""
    import json

    from gradbench import results
    from gradbench.results import training

    found: dict = {}
    present: set = set()
    if fmt == "training":
        files = sorted(EXAMPLE.glob("train-*.json"))
        with recording(found, lambda path: training.SCHEMA_VERSION):
            training.load(files)
        for f in files:
            present.update(paths(json.loads(f.read_text())))
        return found, present
    with tempfile.TemporaryDirectory() as tmp:
        files = [EXAMPLE / name for name in BENCHMARK_FILES.values()]
        files += variants(current_document(Path(tmp)))
        schemas = {}
        for f in files:
            data = json.loads(f.read_text())
            schemas[str(f)] = data["gradbench"]["schema_version"]
            present.update(paths(data))
        with recording(found, lambda path: schemas[str(path)]):
            for f in files:
                results.Document.load(f)
    return found, present


def literal_keys(module: Path) -> set[str]:
    """The field names a loader's source checks by name: the second argument of every
    ``f.text(...)``, ``f.number(...)``, ... call written with a string literal."""
    keys = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in CHECKS and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "f" and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)):
            keys.add(node.args[1].value)
    return keys


#: Checked before the field walk, as the shape of the file (results.document.check_top).
TOP_LEVEL = {"benchmarks", "gradbench", "gradbench.schema_version", "machine_info",
             "format", "schema_version"}


def unchecked(found: dict, present: set) -> list[str]:
    """The field paths present in the files that no field check reads, each only where its
    parent is checked (``machine_info.cpu``, not each of its fields)."""
    rest = []
    for p in sorted(present - set(found) - TOP_LEVEL):
        parent = re.sub(r"(\[\])?\.[^.]+$|\[\]$", "", p)
        if parent == p or parent in found or parent in TOP_LEVEL or not parent:
            rest.append(p)
    return rest


def _paragraph(directive, text: str) -> list:
    """``text`` (reStructuredText inline markup) parsed into nodes."""
    parsed, messages = directive.state.inline_text(text, directive.lineno)
    return [*parsed, *messages]


class FieldsDirective(SphinxDirective):
    """``{gradbench-fields}`` with ``:format: benchmark`` or ``training``; content: one
    ``path: meaning`` line per field."""

    has_content = True
    option_spec = {"format": lambda arg: directives.choice(arg, ("benchmark", "training"))}

    def run(self):
        fmt = self.options.get("format", "benchmark")
        found, present = record(fmt)
        source = ROOT / "gradbench" / "results" / ("training.py" if fmt == "training"
                                                   else "fields.py")
        self.env.note_dependency(str(source))
        self.env.note_dependency(str(Path(__file__)))
        reached = {p.rsplit(".", 1)[-1] for p in found}
        missed = sorted(literal_keys(source) - reached)
        if missed:
            raise self.error(f"fields checked in {source.name} but never reached while "
                             f"recording: {', '.join(missed)} (add them to the documents "
                             "in docs/_ext/gradbench_docs.py)")
        meanings = {}
        for line in self.content:
            if line.strip():
                path, sep, meaning = line.partition(": ")
                if not sep:
                    raise self.error(f"not a 'path: meaning' line: {line!r}")
                meanings[path.strip()] = meaning.strip()
        unknown = sorted(set(meanings) - set(found))
        undescribed = sorted(set(found) - set(meanings))
        if unknown or undescribed:
            raise self.error(
                f"{fmt} fields: "
                + (f"described but not read by the loader: {', '.join(unknown)}; "
                   if unknown else "")
                + (f"read by the loader but not described: {', '.join(undescribed)}"
                   if undescribed else ""))
        out = [self.table(found, meanings, fmt)]
        rest = unchecked(found, present)
        if rest:
            out.append(nodes.paragraph("", "", *_paragraph(
                self, "Also in the files (written by gradbench or pytest-benchmark), not "
                "checked field by field when read: "
                + ", ".join(f"``{p}``" for p in rest) + ".")))
        return out

    def table(self, found: dict, meanings: dict, fmt: str):
        """A definition list, one item per field (long field names fit the page): the field
        and what it holds (its type, the check, whether a file must have it, the schemas
        whose files it is read in), then what it means."""
        out = nodes.definition_list(classes=["gradbench-fields"])
        for path in sorted(found, key=_order(list(meanings))):
            e = found[path]
            holds = e["type"] + (f", {e['check']}" if e["check"] else "")
            holds += "; optional" if e["optional"] else "; required"
            if fmt == "benchmark":
                schemas = sorted(e["schemas"])
                holds += "; read in schema" + ("s " if len(schemas) > 1 else " ") + \
                    ", ".join(map(str, schemas))
            item = nodes.definition_list_item()
            term = nodes.term("", "", nodes.literal(text=path), nodes.Text(" — "),
                              *_paragraph(self, holds))
            item += term
            definition = nodes.definition()
            definition += nodes.paragraph("", "", *_paragraph(self, meanings[path]))
            item += definition
            out += item
        return out


def _order(paths: list):
    """Sort the table as the directive's content lists the fields."""
    at = {p: i for i, p in enumerate(paths)}
    return lambda p: (at.get(p, len(at)), p)


class LayersDirective(SphinxDirective):
    """``{gradbench-layers}``: the import-linter contracts of ``pyproject.toml``, as the
    tests check them (``lint-imports``): the layers from the top down, then every other
    contract."""

    def run(self):
        import tomllib

        pyproject = ROOT / "pyproject.toml"
        self.env.note_dependency(str(pyproject))
        contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
        out = []
        for c in contracts:
            if c["type"] == "layers":
                out.append(nodes.paragraph("", "", *_paragraph(
                    self, f"**{c['name']}** (each layer may import those below it, never "
                    "those above; ``:`` joins siblings that may import each other, ``|`` "
                    "siblings that must not):")))
                items = nodes.enumerated_list()
                for layer in c["layers"]:
                    item = nodes.list_item()
                    item += nodes.paragraph("", "", nodes.literal(text=layer))
                    items += item
                out.append(items)
        rest = nodes.bullet_list()
        for c in contracts:
            if c["type"] == "layers":
                continue
            if c["type"] == "forbidden":
                sources = c["source_modules"]
                who = (f"{len(sources)} packages, every one but those allowed"
                       if len(sources) > 3 else ", ".join(f"``{m}``" for m in sources))
                text = (f"**{c['name']}**: {who} may not import "
                        + ", ".join(f"``{m}``" for m in c["forbidden_modules"]))
            else:
                text = (f"**{c['name']}**: only " + ", ".join(f"``{m}``" for m in c["allowed"])
                        + " imports " + ", ".join(f"``{m}``" for m in c["modules"]))
            item = nodes.list_item()
            item += nodes.paragraph("", "", *_paragraph(self, text))
            rest += item
        out.append(rest)
        return out


def _python_object(dotted: str):
    """The object a dotted name imports as (a module, or attributes of one), or None."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _identity(name: str, obj):
    """What makes two names one object: the object itself, or, for a number, a string or
    None (values Python shares between unrelated names), the last part of the name too."""
    if obj is None or isinstance(obj, int | float | str | bool):
        return (name.rsplit(".", 1)[-1], repr(obj))
    return id(obj)


def same_object(app, env, node, contnode):
    """A Python reference that names a documented gradbench object by another of its names
    (its defining module's, ``gradbench.gradients.numerical_gradient`` for
    ``gradbench.numerical_gradient``, or a name relative to the docstring's module) resolves
    to where that object is documented. Anything else stays unresolved (a warning)."""
    if node.get("refdomain") != "py" or not node.get("reftarget"):
        return None
    from sphinx.util.nodes import make_refnode

    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module and cls:
        candidates.insert(0, f"{module}.{cls}.{target}")
    if module:
        candidates.insert(0 if not cls else 1, f"{module}.{target}")
    domain = env.get_domain("py")
    if not hasattr(env, "_gradbench_by_object"):
        env._gradbench_by_object = {}
    by_object = env._gradbench_by_object
    if len(by_object) != len(domain.objects):
        by_object.clear()
        by_object["_n"] = len(domain.objects)
        for name in domain.objects:
            if name.startswith("gradbench"):
                obj = _python_object(name)
                if obj is not None:
                    by_object.setdefault(_identity(name, obj), name)
        by_object["_n"] = len(domain.objects)
    for dotted in candidates:
        if not dotted.startswith("gradbench"):
            continue
        obj = _python_object(dotted)
        name = by_object.get(_identity(dotted, obj)) if obj is not None else None
        if name is not None:
            entry = domain.objects[name]
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                                contnode, name)
    return None


def cli_parser():
    """``gradbench``'s parser (:func:`gradbench.cli.build_parser`) for sphinx-argparse, each
    epilog (the exit statuses, as ``--help`` prints them) set as a literal block: it is
    reStructuredText there, where its indentation would read as a block quote; and each
    description, wrapped for a terminal, unwrapped."""
    import argparse
    import textwrap

    from gradbench.cli import build_parser

    parser = build_parser()
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    for p in parsers:
        if p.description:  # wrapped at 79 columns for a terminal: a paragraph here
            p.description = " ".join(re.sub(r"-\n", "-", p.description).split())
        if p.epilog:
            p.epilog = "::\n\n" + textwrap.indent(p.epilog, "   ")
    return parser


def setup(app):
    app.connect("missing-reference", same_object)
    app.add_directive("gradbench-fields", FieldsDirective)
    app.add_directive("gradbench-layers", LayersDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
