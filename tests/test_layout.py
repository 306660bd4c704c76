"""The package's layout: its modules import one another one way only (no
cycles), and never import another module's private names.

Every module under ``src/ntklab`` is read with :mod:`ast` (nothing is imported). An edge
``a -> b`` is any import of ``b`` in ``a``, at module level or inside a function (imports
under ``if TYPE_CHECKING:`` do not run and are left out). A package ``__init__`` only
re-exports, so an import of a name from a package is followed to the submodule that defines
it (the ``from .sub import name`` lines of the ``__init__`` or of its ``__init__.pyi``), and
the ``__init__`` modules themselves are not nodes of the cycle check.
"""

from __future__ import annotations

import ast
from pathlib import Path

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


def _reexports(package: str) -> dict[str, str]:
    """{name: defining submodule} of a package ``__init__``: the ``from .sub import name``
    lines of its ``__init__.py`` and of its stub ``__init__.pyi`` (the public-name table
    that :mod:`ntklab._lazy` reads)."""
    path, tree = MODULES[package]
    stub = path.with_suffix(".pyi")
    trees = [tree, *([ast.parse(stub.read_text(encoding="utf-8"))] if stub.exists() else [])]
    out = {}
    for node in (n for t in trees for n in ast.walk(t)):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{package}.{node.module}"
    return out


def _target(base: str, name: str) -> str:
    """The module that ``from base import name`` really depends on."""
    if f"{base}.{name}" in MODULES:
        return f"{base}.{name}"
    if base in PACKAGES:
        sub = _reexports(base).get(name)
        if sub in MODULES and sub != base:
            return sub
    return base


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, (_, tree) in MODULES.items():
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(PACKAGE + "."):
                        graph[module].add(alias.name)
                continue
            base = _base(module, node)
            if base is None:
                continue
            for alias in node.names:
                graph[module].add(_target(base, alias.name))
    for module in graph:
        graph[module].discard(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    nodes = [m for m in graph if m not in PACKAGES]
    edges = {m: [t for t in graph[m] if t in graph and t not in PACKAGES] for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def _private_imports() -> set[tuple[str, str, str]]:
    """(importer, module, name) of every ``from module import _name`` across modules (a
    package ``__init__`` re-exporting from its own submodule is fine; dunders are fine)."""
    out = set()
    for module, (_, tree) in MODULES.items():
        for node in _imports(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _base(module, node)
            if base is None:
                continue
            for alias in node.names:
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


def test_the_graph_sees_the_package():
    graph = _edges()
    assert {"ntklab.report.runs", "ntklab.config.schema", "ntklab.execution.runner"} <= set(graph)
    # module-level, relative, function-level and through-the-package imports all count
    assert "ntklab.store.db" in graph["ntklab.report.runs"]  # `from ..store import RunStore`
    assert "ntklab.report.stats" in graph["ntklab.report.tables"]
    assert "ntklab.report.runs" in graph["ntklab.cli"]  # `from .report import load_run` inside
    assert "ntklab.config.plan" in graph["ntklab.execution.runstore"]  # through config/__init__


def test_the_checks_can_fail(monkeypatch):
    """A cycle and a private import planted in a copy of the modules are found."""
    planted = dict(MODULES)
    planted["ntklab.report.stats"] = (
        MODULES["ntklab.report.stats"][0],
        ast.parse("from .tables import _hidden\n"),
    )
    monkeypatch.setattr(__import__(__name__), "MODULES", planted)
    assert any({"ntklab.report.stats", "ntklab.report.tables"} <= set(c) for c in _cycles(_edges()))
    assert ("ntklab.report.stats", "ntklab.report.tables", "_hidden") in _private_imports()


def test_no_import_cycles():
    cycles = _cycles(_edges())
    assert cycles == [], "modules that import each other: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_private_names_across_modules():
    found = _private_imports()
    assert sorted(found) == []
