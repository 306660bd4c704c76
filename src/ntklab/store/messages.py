"""The one-line texts a run's store says: :class:`StoreError` (what a refusal or failure
raises), what an SQLite error means (:func:`classify`: a full disk, a read-only file, a
corrupted store...) and the message for each case, and :func:`assumed_line`, the run's
assumed values on one line.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
from pathlib import Path
from typing import Any

__all__ = [
    "StoreError",
    "assumed_line",
    "classify",
    "out_of_space",
    "read_failure_message",
    "readonly_file_message",
    "unwritable_dir_message",
    "write_failure_message",
]


class StoreError(RuntimeError):
    """A run directory that cannot be used: not a run, corrupted, or from another config."""


def assumed_line(assumed: dict[str, Any]) -> str:
    """The ``assumed`` meta entry on one line, for ``ntklab run`` and the report alike.

    Keys are dotted config paths; entries with the same name and value are merged, listing
    where they apply: ``{"data.n_train": 36, "methods.NN1.sigma_w": 1.0,
    "methods.NN2.sigma_w": 1.0}`` gives ``Assumed values (SPEC): n_train = 36 (data);
    sigma_w = 1.0 (NN1, NN2).``; a swept key is named whole, ``methods.*.width = [64, 128]
    (sweep)``. An empty dict: the run states every value (the seed's protocol, SPEC §6).
    """
    if not assumed:
        return "Assumed values (SPEC): none (SPEC §6 states every value)."
    groups: dict[tuple[str, str], list[str]] = {}
    for key, value in assumed.items():
        parts = str(key).split(".")
        if parts[0] == "methods" and len(parts) > 2:
            owner, name = parts[1], ".".join(parts[2:])
        elif parts[0] == "sweep":
            owner, name = "sweep", ".".join(parts[1:])
        else:
            owner, name = ".".join(parts[:-1]), parts[-1]
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        where = groups.setdefault((name, shown), [])
        if owner:
            where.append(owner)
    items = "; ".join(
        f"{name} = {value}" + (f" ({', '.join(where)})" if where else "")
        for (name, value), where in groups.items()
    )
    return f"Assumed values (SPEC): {items}."


def classify(exc: BaseException, db: Path) -> tuple[str, str]:
    """``(kind, why)`` of an SQLite error: kind in full, readonly, corrupt, busy, cantopen, io,
    other; ``why`` says what filled up when SQLite reports only an I/O error."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    text = str(exc).lower()
    if code == 13 or "disk is full" in text:
        return "full", "no space left on the device"
    if code == 10 or "disk i/o error" in text:
        why = out_of_space(db)
        return ("full", why) if why else ("io", "")
    if code == 8 or "readonly" in text:
        return "readonly", ""
    if code in (11, 26) or "malformed" in text or "not a database" in text:
        return "corrupt", ""
    if code in (5, 6) or "locked" in text:
        return "busy", ""
    if code == 14 or "unable to open" in text:
        return "cantopen", ""
    return "other", ""


def out_of_space(db: Path) -> str:
    """Why a write to ``db`` may have failed for lack of room ('' if it seems not to have):
    SQLite reports a file-size limit, and some full file systems, as a plain I/O error."""
    db = Path(db)
    try:
        st = os.statvfs(db.parent)
        if st.f_bavail * st.f_frsize < (8 << 20):
            return "no space left on the device"
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY:
        sizes = []
        for f in (db, Path(f"{db}-wal"), Path(f"{db}-journal")):
            try:
                sizes.append(f.stat().st_size)
            except OSError:
                pass
        if max(sizes, default=0) + (1 << 20) >= soft:
            return f"the file-size limit, ulimit -f, of {soft} bytes is reached"
    return ""


def unwritable_dir_message(run_dir: Path, exc: OSError | None) -> str:
    why = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return (
        f"cannot write to the run directory {run_dir}{why}: it is read-only for this user; "
        "`ntklab status`, `report` and `export` can still read it. To add trials, make it "
        "writable or copy it elsewhere (`ntklab export`) and run there"
    )


def readonly_file_message(db: Path, kept: str = "") -> str:
    return (
        f"cannot write {db}: the file is read-only{kept}; `ntklab status`, `report` and "
        "`export` can still read it. To add trials, make it writable (chmod u+w) and rerun"
    )


def write_failure_message(
    db: Path, exc: sqlite3.Error, what: str, stored: bool | None, n_done: int | None
) -> str:
    """The line for an SQLite error while writing ``what`` to the store ``db``.

    ``stored``: for a trial, whether it was committed before the error (``True``: only the
    checkpoint, copying the WAL into the file, failed; ``False``: the transaction failed and
    was rolled back). ``n_done``: the ``done`` trials the store holds (``None`` if it could
    not be read)."""
    kind, why = classify(exc, db)
    wal = Path(f"{db}-wal")
    kept = ""
    if n_done is not None:
        n = n_done
        kept = f"; the {n} trial(s) already stored are intact"
        if stored:
            kept = (
                f"; all {n} done trial(s), this one included, are stored and intact (the "
                f"latest only in {wal.name} beside it: keep that file with it)"
            )
        elif stored is False:
            kept = f"; it is not stored, and the {n} trial(s) already stored are intact"
    if stored:
        what = f"checkpoint {what.removeprefix('store ')} (copy it from {wal.name} into the file)"
    if kind == "full":
        return (
            f"disk full: cannot {what} in {db} ({why}){kept}. Free some space, "
            "then rerun the same command to resume"
        )
    if kind == "readonly":
        return readonly_file_message(db, kept)
    if kind == "corrupt":
        return (
            f"{db} is corrupted ({exc}){kept}; keep it for inspection and start a "
            "new run with another --out"
        )
    if kind == "busy":
        return f"{db} is locked by another process ({exc}); stop it and rerun"
    return f"cannot {what} in {db}: {exc}{kept}"


def read_failure_message(db: Path, exc: BaseException) -> str:
    """The line for an error while reading the store ``db``."""
    kind, why = classify(exc, db) if isinstance(exc, sqlite3.Error) else ("other", "")
    if kind == "corrupt" or kind == "other":
        return (
            f"{db} is corrupted or not an ntklab store ({exc}); keep it for "
            "inspection and start a new run with another --out"
        )
    if kind == "cantopen":
        return f"cannot open {db} ({exc}); check that it and its directory can be read"
    if kind == "busy":
        return f"{db} is locked by another process ({exc}); try again"
    return f"cannot read {db}: {exc}" + (f" ({why})" if why else "")
