"""Exporting a run's store: one self-contained SQLite copy, made with the backup API on a
read-only connection (safe while the run still writes), checked, and never written over a
store.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from .db import RunStore
from .messages import StoreError, classify
from .ownership import store_files, store_owning
from .schema import DB_NAME

__all__ = ["export"]


def export(run_dir: str | Path, out: str | Path, *, force: bool = False) -> tuple[Path, int]:
    """Write the store of ``run_dir`` to ``out`` as one self-contained SQLite file.

    Uses the SQLite backup API on a read-only connection, so it is safe while the run is
    still writing; the copy has no ``-wal`` file (journal mode DELETE) and is checked with
    ``PRAGMA quick_check``. ``out`` is written through a temporary file and renamed, and an
    existing ``out`` is replaced only with ``force`` (never a file of the run itself).
    ``ntklab status``/``report`` read the copy directly, or as ``DIR/results.sqlite``.

    Returns
    -------
    (out, n_done) : the path written and the number of ``done`` trials in it.
    """
    out = Path(out)
    with RunStore.open(run_dir) as store:
        own = {p.resolve() for p in store_files(store.path.parent)} | {store.path.resolve()}
        if out.resolve() in own:
            raise StoreError(f"{out} is a file of the run itself; export to another path")
        owner = store_owning(out)
        if owner is not None:
            raise StoreError(
                f"refusing to write {out}: it is {owner}; export never replaces a store, even "
                "with --force (which replaces only a user's file): choose another path"
            )
        if out.is_dir():
            raise StoreError(f"{out} is a directory; give the file to write, e.g. {out / DB_NAME}")
        if out.exists() and not force:
            raise StoreError(f"{out} exists; choose another name, or pass --force to replace it")
        if not out.parent.is_dir():
            raise StoreError(f"cannot write {out}: directory {out.parent} does not exist")
        tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
        try:
            try:  # made here, so that a directory it cannot write is named as such
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise StoreError(
                        f"cannot write {out}: its directory {out.parent} is not writable "
                        f"({exc.strerror}); export to a directory you can write"
                    ) from None
                raise
            dest = sqlite3.connect(tmp)
            try:
                store._conn.backup(dest)
                dest.execute("PRAGMA journal_mode=DELETE").fetchall()
                (n_done,) = dest.execute(
                    "SELECT COUNT(*) FROM trials WHERE status='done'"
                ).fetchone()
                check = dest.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dest.close()
            if check != "ok":
                raise StoreError(f"the copy of {store.path} fails quick_check ({check})")
            os.replace(tmp, out)
        except sqlite3.Error as exc:
            why = classify(exc, tmp)[1]
            raise StoreError(f"cannot write {out}: {exc}" + (f" ({why})" if why else "")) from None
        except OSError as exc:
            raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from None
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal")):
                try:
                    leftover.unlink()
                except OSError:
                    pass
    return out, int(n_done)
