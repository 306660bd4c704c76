"""Which paths belong to a run's store: a run directory and the files of its store, any SQLite
file's journals, any ntklab store (:func:`store_owning`, which every command that writes a
file asks first), and the run directory a run makes (:func:`make_run_dir`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from .messages import StoreError
from .schema import DB_NAME, LOCK_NAME, SQLITE_HEADER, TABLES

__all__ = [
    "is_ntklab_store",
    "is_run_dir",
    "is_sqlite_file",
    "make_run_dir",
    "store_files",
    "store_owning",
]


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


def is_sqlite_file(path: str | Path) -> bool:
    """True if ``path`` is a file that starts with the SQLite header."""
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def store_files(run_dir: str | Path) -> set[Path]:
    """The files of a run's store: the database, its WAL, shared-memory and journal files,
    and the run lock (whether or not they exist)."""
    run_dir = Path(run_dir)
    db = run_dir / DB_NAME
    return {db, run_dir / LOCK_NAME, *(Path(f"{db}{s}") for s in ("-wal", "-shm", "-journal"))}


def is_ntklab_store(path: Path) -> bool:
    """True if ``path`` is an SQLite file with the tables of an ntklab store (read-only look)."""
    if not is_sqlite_file(path):
        return False
    try:
        uri = "file:" + quote(str(path.resolve())) + "?mode=ro&immutable=1"
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # an SQLite file it cannot read: not ours to replace either
    return TABLES <= {r[0] for r in rows}


def store_owning(path: str | Path) -> str | None:
    """What run store ``path`` is, or belongs to (``None`` if none): a phrase for a refusal.

    A path is protected when it is a run directory (one holding ``results.sqlite`` or the run
    lock), a file of a run directory's store (``results.sqlite``, its ``-wal``/``-shm``/
    ``-journal``, the lock; existing or not, since a run writes them later), the ``-wal``,
    ``-shm`` or ``-journal`` of any SQLite file, or any ntklab store (an exported copy too).
    Symbolic links are followed. Every command that writes a file checks its target here, and
    ``--force`` never overrides it: it replaces a user's file, never a store.
    """
    path = Path(path)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # pragma: no cover - a symlink loop
        return None

    def run_dir(d: Path) -> bool:
        return (d / DB_NAME).exists() or (d / LOCK_NAME).exists()

    if resolved.is_dir():
        return f"the run directory {resolved}" if run_dir(resolved) else None
    parent, name = resolved.parent, resolved.name
    if name in {f.name for f in store_files(parent)} and run_dir(parent):
        return f"a file of the store of the run in {parent}"
    for suffix in ("-wal", "-shm", "-journal"):
        if name.endswith(suffix) and is_sqlite_file(parent / name[: -len(suffix)]):
            return f"a file of the SQLite database {parent / name[: -len(suffix)]}"
    if resolved.is_file() and is_ntklab_store(resolved):
        return "an ntklab store (a run's results)"
    return None


def make_run_dir(path: str | Path) -> Path:
    """Create the run directory (and its parents) if needed; a clear error if it cannot be."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create run directory {path}: {exc.strerror}; choose another --out"
        ) from None
    return path
