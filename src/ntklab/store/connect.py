"""The SQLite connections to a store: read-write for the writer (no pragma until the file is
checked), and read-only for readers (``mode=ro``, or ``immutable`` where SQLite cannot keep
its shared-memory file beside the store).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from .messages import StoreError, classify

__all__ = ["connect_ro", "connect_rw"]


def connect_rw(db: Path) -> sqlite3.Connection:
    """A read-write connection; no pragma yet (a file is checked before anything is written)."""
    try:
        return sqlite3.connect(db, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {db}: {exc}; choose another --out") from None


def connect_ro(db: Path) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro``, or ``mode=ro&immutable=1`` when SQLite cannot
    keep its shared-memory file next to the store (a read-only directory or file system).

    ``immutable`` ignores the WAL, which holds nothing once checkpointed (after every trial);
    it is used first only when the directory is read-only and has no WAL file."""
    uri = "file:" + quote(str(db.resolve())) + "?mode=ro"
    tries = [uri, uri + "&immutable=1"]
    if not os.access(db.parent, os.W_OK) and not Path(f"{db}-wal").exists():
        tries = tries[1:]
    for i, candidate in enumerate(tries):
        try:
            conn = sqlite3.connect(candidate, uri=True, timeout=30.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {db} ({exc}); check its permissions") from None
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            kind, _ = classify(exc, db)
            if kind in ("readonly", "cantopen") and i + 1 < len(tries):
                conn.close()
                continue
            return conn  # the caller's checks report the problem in one line
    raise AssertionError("unreachable")  # pragma: no cover
