"""An import-linter contract for submodules of external packages.

import-linter's own contracts see an external package only whole (``numba``, ``scipy``), but
DESIGN.md's rules name parts of them: only ``gradbench.kernels.cuda`` imports ``numba.cuda``
(every kernel imports ``numba``), only ``gradbench.peers`` imports ``scipy.optimize``
(``gradbench.blas`` loads ``scipy.linalg``). This contract reads the import statements that
the graph records for each direct import of the package and fails on those that name the
submodule, from any module outside the allowed ones.

    [[tool.importlinter.contracts]]
    type = "external_submodules"
    modules = ["numba.cuda"]
    allowed = ["gradbench.kernels.cuda"]
"""

from __future__ import annotations

import re

from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


def _names_submodule(line: str, submodule: str) -> bool:
    """Whether the import statement ``line`` imports ``submodule`` (``package.part``) or
    something inside it; a bare ``package`` is named by every import of it."""
    package, _, part = submodule.partition(".")
    if not part:
        return True
    p, s = re.escape(package), re.escape(part)
    return bool(
        re.match(rf"\s*(import|from)\s+{p}\.{s}\b", line)
        or re.match(rf"\s*from\s+{p}\s+import\s+(\(?\s*)([\w\s,]*\b)?{s}\b", line)
        or re.match(rf"\s*import\s+.*\b{p}\.{s}\b", line)
    )


class ExternalSubmodulesContract(Contract):
    """Only the ``allowed`` modules (and their descendants) import the external ``modules``,
    each named as ``package.submodule`` (or a bare ``package``); direct imports only."""

    type_name = "external_submodules"

    modules = fields.ListField(subfield=fields.StringField())
    allowed = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        allowed = [str(a) for a in self.allowed]
        bad = []
        for submodule in (str(m) for m in self.modules):
            package = submodule.partition(".")[0]
            if package not in graph.modules:
                continue
            for importer in sorted(graph.find_modules_that_directly_import(package)):
                if any(importer == a or importer.startswith(a + ".") for a in allowed):
                    continue
                for detail in graph.get_import_details(importer=importer, imported=package):
                    if _names_submodule(detail["line_contents"], submodule):
                        bad.append((importer, submodule, detail["line_number"],
                                    detail["line_contents"]))
        return ContractCheck(kept=not bad, metadata={"bad": bad})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, submodule, line, text in check.metadata["bad"]:
            output.print_error(f"{importer} imports {submodule} (l.{line}: {text.strip()})",
                               bold=False)
            output.new_line()
