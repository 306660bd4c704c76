"""Reading configs: presets and TOML files, ``extends`` with its ``[set]`` table, ``--set``
overrides from the command line, the keys a kernel method takes from its ``network``, and
``--only`` selections. Everything here works on the raw TOML dict, before validation."""

from __future__ import annotations

import copy
import difflib
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from .schema import FROM_NETWORK, KINDS, ConfigError, flatten

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "preset_names",
    "read_toml",
    "load_raw",
    "parse_override",
    "apply_override",
    "resolve_networks",
    "select_methods",
]


def preset_names() -> list[str]:
    """Names of the presets shipped in ``ntklab/presets``."""
    folder = resources.files("ntklab") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_toml(text: str, where: str) -> dict:
    """Parse TOML ``text``, or :class:`ConfigError` naming ``where`` and the syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from None


def load_raw(
    source: str | Path, *, _chain: tuple[str, ...] = (), _extended: str = ""
) -> tuple[dict, str]:
    """Read a preset name or a TOML file into a dict. Returns ``(raw, where)``.

    A config may start from another one: ``extends = "seed"`` (a preset name, or a path
    relative to the extending file) takes that config, merges this file's tables into it
    (tables key by key, ``[[methods]]`` appended, other values replaced) and then applies
    the dotted overrides of its ``[set]`` table, exactly as ``--set`` would
    (``"methods.*.normalization" = "corrected"``).
    """
    try:
        raw, where = _load_one(source)
    except ConfigError as exc:
        if not _chain:
            raise
        raise ConfigError(f"{_chain[-1]}: extends = {_extended!r}: {exc}") from None
    if "extends" not in raw:
        return raw, where
    base = raw.pop("extends")
    overrides = raw.pop("set", {})
    if not isinstance(base, str):
        raise ConfigError(f"{where}: extends must be a preset name or a file path; got {base!r}")
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: [set] must be a table of dotted keys = values")
    if where in _chain or len(_chain) > 8:
        raise ConfigError(f"{where}: extends forms a cycle ({' -> '.join(_chain + (where,))})")
    written = base  # as the extending file spells it
    if where != f"preset {source}" and not Path(base).is_absolute() and base not in preset_names():
        beside = Path(where).parent / base  # a path is relative to the extending file
        if beside.exists() or Path(base).suffix == ".toml" or "/" in base:
            base = str(beside)  # (else a mistyped preset name: said so, with the presets)
    merged, _ = load_raw(base, _chain=_chain + (where,), _extended=written)
    _merge(merged, raw)
    for key, value in overrides.items():
        apply_override(merged, key, value, where=f"{where}: [set]")
    return merged, where


def _merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value)
        elif key == "methods" and isinstance(old, list) and isinstance(value, list):
            old.extend(value)
        else:
            into[key] = value


def _load_one(source: str | Path) -> tuple[dict, str]:
    source = str(source)
    path = Path(source)
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        return read_toml(text, str(path)), str(path)
    names = preset_names()
    if source in names:
        text = (resources.files("ntklab") / "presets" / f"{source}.toml").read_text("utf-8")
        return read_toml(text, f"preset {source}"), f"preset {source}"
    if path.suffix == ".toml" or "/" in source or path.exists():
        raise ConfigError(f"config file not found: {source}")
    close = difflib.get_close_matches(source, names, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"unknown preset '{source}'; {hint}available presets: {', '.join(names)} "
        "(or pass the path of a .toml file)"
    )


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (value as a TOML value; a bare word is a string)."""
    if "=" not in text:
        raise ConfigError(
            f"--set {text!r} must look like key=value (e.g. --set methods.NN1.width=256)"
        )
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: the key must be a dotted path such as data.n_train")
    value = value.strip()
    if not value:
        raise ConfigError(f"--set {text!r}: the value is empty")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        if any(c in value for c in "[]{}\"'=,"):
            raise ConfigError(f"--set {text!r}: cannot parse the value {value!r} as TOML") from None
        parsed = value
    return key, parsed


def _method_targets(raw: dict, name: str, field: str, where: str) -> list[dict]:
    methods = raw.get("methods")
    if not isinstance(methods, list):
        raise ConfigError(f"{where}: the config has no [[methods]]")
    if name == "*":
        targets = [
            m for m in methods if isinstance(m, dict) and field in KINDS.get(m.get("kind"), ())
        ]
        if not targets:
            raise ConfigError(f"{where}: no method accepts '{field}'")
        return targets
    for m in methods:
        if isinstance(m, dict) and m.get("name") == name:
            return [m]
    names = [m.get("name") for m in methods if isinstance(m, dict)]
    close = difflib.get_close_matches(name, [n for n in names if isinstance(n, str)], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ConfigError(
        f"{where}: no method named '{name}'; {hint}methods: {', '.join(map(str, names))}"
    )


def apply_override(raw: dict, key: str, value: Any, *, where: str = "--set") -> None:
    """Set the dotted ``key`` in ``raw`` (in place); ``methods.NAME.x`` / ``methods.*.x`` too."""
    parts = key.split(".")
    where = f"{where} {key}"
    if parts[0] == "sweep" and len(parts) > 1:
        raw.setdefault("sweep", {})
        if not isinstance(raw["sweep"], dict):
            raise ConfigError(f"{where}: sweep must be a table")
        raw["sweep"] = flatten(raw["sweep"])
        if not isinstance(value, list):
            value = [value]
        raw["sweep"][".".join(parts[1:])] = value
        return
    if parts[0] == "methods":
        if len(parts) != 3:
            raise ConfigError(
                f"{where}: method keys look like methods.NAME.FIELD or methods.*.FIELD"
            )
        for m in _method_targets(raw, parts[1], parts[2], where):
            m[parts[2]] = value
        return
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {part} is not a table")
        node = child
    node[parts[-1]] = value


def resolve_networks(raw: dict, where: str) -> None:
    """Fill, in place, the keys a method with ``network = "NAME"`` takes from that network.

    A kernel method's ``network`` names a ``network`` method of the same config; its
    :data:`FROM_NETWORK` keys (the architecture; for ``ntk_time`` also lr, epochs,
    batch_size, holdout_fraction and width) are copied from it, so the kernel is the
    network's own and an override of the network (``--set methods.NN1.width=...``, a sweep)
    moves both. Setting such a key on the kernel method to another value is an error.
    """
    methods = raw.get("methods")
    if not isinstance(methods, list):
        return
    by_name = {m.get("name"): m for m in methods if isinstance(m, dict)}
    for i, m in enumerate(methods):
        if not isinstance(m, dict) or m.get("network") is None:
            continue
        here = f"{where}: methods[{i}] ({m.get('name')}).network"
        keys = FROM_NETWORK.get(m.get("kind"))
        if keys is None:
            raise ConfigError(f"{here}: network applies to kinds {', '.join(FROM_NETWORK)} only")
        ref = by_name.get(m["network"])
        if not isinstance(ref, dict) or ref.get("kind") != "network":
            nets = [
                str(n)
                for n, v in by_name.items()
                if isinstance(v, dict) and v.get("kind") == "network"
            ]
            raise ConfigError(
                f"{here} = {m['network']!r} names no network method; network methods: "
                f"{', '.join(nets) or 'none'}"
            )
        for key in keys:
            if key in ref:
                if key in m and m[key] != ref[key]:
                    raise ConfigError(
                        f"{here}: {key} = {m[key]!r} but network {m['network']!r} has "
                        f"{key} = {ref[key]!r}; set it on the network (methods.{m['network']}.{key}) "
                        "and drop it here"
                    )
                m[key] = copy.deepcopy(ref[key])


def select_methods(raw: dict, only: tuple[str, ...], source: str) -> dict:
    """Keep the methods named in ``only`` (after :func:`resolve_networks`). The sweep is kept
    whole: a sweep over a network that is not selected still moves the kernel methods that
    take their settings from it."""
    names = [m.get("name") for m in raw.get("methods", []) if isinstance(m, dict)]
    unknown = [n for n in only if n not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], [str(n) for n in names], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"--only: {source} has no method named '{unknown[0]}'; {hint}"
            f"its methods: {', '.join(map(str, names))}"
        )
    out = copy.deepcopy(raw)
    out["methods"] = [m for m in out["methods"] if m.get("name") in only]
    return out
