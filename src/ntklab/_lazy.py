"""Lazy attributes for a package's thin public API (PEP 562), so ``import ntklab`` is fast.

A package lists its public names once, in the stub ``__init__.pyi`` beside its
``__init__.py`` (type checkers and IDEs read the same file), and its ``__init__.py`` calls
:func:`attach_stub`.
"""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Callable, Mapping


def lazy_attributes(
    package: str, namespace: dict, names: Mapping[str, str], submodules: frozenset[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps a public name to the
    submodule that defines it, imported on first access (then cached in ``namespace``);
    ``submodules`` are reachable as attributes the same way."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
        elif name in submodules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value  # later accesses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())) | submodules)

    return __getattr__, __dir__


def read_stub(stub: str) -> tuple[dict[str, str], frozenset[str], list[str]]:
    """``(names, submodules, public)`` of a package's ``__init__.pyi``.

    Each line of the stub is one of

    * ``from .sub import name as name``: ``name`` is public, defined in ``sub``;
    * ``from . import sub as sub``: ``sub`` is a public submodule;
    * ``from . import sub``: ``sub`` is reachable as an attribute, not public;
    * ``name: type``: a public name that ``__init__.py`` defines itself (``__version__``).

    ``names`` maps a lazily imported name to its submodule, ``public`` (``__all__``) lists
    the public names in the stub's order.
    """
    names: dict[str, str] = {}
    submodules: set[str] = set()
    public: list[str] = []
    with open(stub, encoding="utf-8") as file:
        tree = ast.parse(file.read(), stub)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                if alias.asname not in (None, alias.name):
                    raise ValueError(f"{stub}: renaming {alias.name} as {alias.asname}")
                if node.module:
                    names[alias.name] = node.module
                else:
                    submodules.add(alias.name)
                if alias.asname:
                    public.append(alias.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            public.append(node.target.id)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            raise ValueError(f"{stub}, line {node.lineno}: not a line of a public-name table")
    return names, frozenset(submodules), public


def attach_stub(
    package: str, init_file: str, namespace: dict
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``, from the stub ``__init__.pyi``
    beside its ``init_file`` (:func:`read_stub`, :func:`lazy_attributes`)."""
    names, submodules, public = read_stub(os.path.splitext(init_file)[0] + ".pyi")
    namespace["__all__"] = public
    return (*lazy_attributes(package, namespace, names, submodules), public)
