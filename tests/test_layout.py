"""The package's layout: its modules import one another one way only (no cycles), and
never import another module's private names.

No cycles: the import-linter contract in ``pyproject.toml`` (``[tool.importlinter]``,
``acyclic_siblings``: at every level of the package, its modules and subpackages import one
another one way; imports inside functions count, those under ``if TYPE_CHECKING:`` do not).
import-linter sees ``from .report import load_run`` as an import of the package
``ntklab.report``, whose ``__init__`` imports its names lazily; so a module must not import
a name (rather than a submodule) through its own package, where that would hide an edge.

Private names: every module under ``src/ntklab`` is read with :mod:`ast` (nothing is
imported).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import tomllib

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ntklab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        out[_module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return out


MODULES = _modules()
PACKAGES = {name for name, (path, _) in MODULES.items() if path.name == "__init__.py"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node that runs (not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _base(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an ImportFrom reads from (None outside the package)."""
    if node.level == 0:
        name = node.module or ""
    else:
        here = module.split(".")
        if module not in PACKAGES:
            here = here[:-1]  # a plain module: relative to its package
        anchor = here[: len(here) - (node.level - 1)]
        name = ".".join(anchor + ([node.module] if node.module else []))
    return name if name == PACKAGE or name.startswith(PACKAGE + ".") else None


def _from_imports():
    """``(importer, module, alias)`` of every name a module imports from the package."""
    for module, (_, tree) in MODULES.items():
        for node in _imports(tree):
            if isinstance(node, ast.ImportFrom):
                base = _base(module, node)
                if base is not None:
                    yield from ((module, base, alias) for alias in node.names)


def _private_imports() -> set[tuple[str, str, str]]:
    """(importer, module, name) of every ``from module import _name`` across modules (a
    package ``__init__`` re-exporting from its own submodule is fine; dunders are fine)."""
    out = set()
    for module, base, alias in _from_imports():
        name = alias.name
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
            continue
        if f"{base}.{name}" in MODULES:  # a private *module* (_lazy, _validation)
            continue
        if module in PACKAGES and base.startswith(module + "."):
            continue  # a package re-exporting its own submodule's name
        if base != module:
            out.add((module, base, name))
    return out


def _lint(config: Path) -> int:
    """Exit status of import-linter's contracts in ``config`` (0: all kept)."""
    from importlinter.cli import lint_imports

    return lint_imports(str(config), no_cache=True, no_logo=True)


def _contract_for(tmp_path: Path, package: str) -> Path:
    """The project's import-linter configuration, for ``package`` instead of ntklab."""
    text = (SRC.parent / "pyproject.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)["tool"]["importlinter"]
    contracts = config.pop("contracts")
    config["root_package"] = package
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    for contract in contracts:
        contract["ancestors"] = [package]
        lines.append("[[tool.importlinter.contracts]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in contract.items()]
    path = tmp_path / "importlinter.toml"
    path.write_text("[tool.importlinter]\n" + "\n".join(lines) + "\n")
    return path


def test_no_import_cycles():
    assert _lint(SRC.parent / "pyproject.toml") == 0, "modules that import each other (above)"


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """A cycle (through an import inside a function, in a subpackage) and a private import
    planted in a package are found."""
    root = tmp_path / "planted"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "stats.py").write_text("def f():\n    from .tables import _hidden\n")
    (root / "sub" / "tables.py").write_text("from . import stats\n_hidden = 1\n")
    (root / "sub" / "guarded.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import tables\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _lint(_contract_for(tmp_path, "planted")) != 0
    (root / "sub" / "stats.py").write_text("")  # the cycle gone (TYPE_CHECKING is no edge)
    assert _lint(_contract_for(tmp_path, "planted")) == 0
    planted = dict(MODULES)
    planted["ntklab.report.stats"] = (
        MODULES["ntklab.report.stats"][0],
        ast.parse("from .tables import _hidden\n"),
    )
    planted["ntklab.report.tables"] = (
        MODULES["ntklab.report.tables"][0],
        ast.parse("from ..report import main_table\n"),
    )
    monkeypatch.setattr(__import__(__name__), "MODULES", planted)
    assert ("ntklab.report.stats", "ntklab.report.tables", "_hidden") in _private_imports()
    assert ("ntklab.report.tables", "ntklab.report", "main_table") in _names_through_own_package()


def test_no_private_names_across_modules():
    found = _private_imports()
    assert sorted(found) == []


def _names_through_own_package() -> set[tuple[str, str, str]]:
    """(importer, package, name) of every ``from <an enclosing package> import name`` whose
    name is not a submodule (an edge that the package's lazy ``__init__`` hides)."""
    return {
        (module, base, alias.name)
        for module, base, alias in _from_imports()
        if base in PACKAGES
        and module.startswith(base + ".")
        and f"{base}.{alias.name}" not in MODULES
    }


def test_no_module_imports_a_name_through_its_own_package():
    assert sorted(_names_through_own_package()) == []
