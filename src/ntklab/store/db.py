"""The store itself, :class:`RunStore`: opening (checked, read-only for readers) or creating
a run's ``results.sqlite``, writing one trial per transaction and checkpointing the WAL into
the file after each, and reading its tables back.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .connect import connect_ro, connect_rw
from .messages import (
    StoreError,
    read_failure_message,
    readonly_file_message,
    unwritable_dir_message,
    write_failure_message,
)
from .ownership import is_sqlite_file, make_run_dir
from .schema import DB_NAME, FINAL, SCHEMA_SQL, SCHEMA_VERSION, TABLES, TrialRecord

if TYPE_CHECKING:  # pandas loads on first use of a table (worker processes never need it)
    import pandas as pd

__all__ = ["RunStore"]


class RunStore:
    """Read/write access to ``RUN_DIR/results.sqlite``.

    Use :meth:`create` (new run or resume of the same config) in the writer, which must hold
    the :class:`RunLock`, and :meth:`open` (a read-only connection) in reports and tools.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, writable: bool = False):
        self.path = path
        self._conn = conn
        self.writable = writable
        self._closed = False

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: str | Path, *, write: bool = False) -> RunStore:
        """Open an existing run for reading; :class:`StoreError` if it is not one.

        The connection is read-only (``mode=ro``; ``immutable=1`` when the directory cannot
        be written), so reading never changes a run, a read-only run can be read, and a file
        that is not an ntklab store is left as it is. ``run_dir`` may also be a store file
        itself (e.g. one written by :func:`export`). ``write=True`` opens a read-write
        connection instead (tools and tests; it takes no :class:`RunLock`).
        """
        path = Path(run_dir)
        if path.is_file() and is_sqlite_file(path):
            db = path
        else:
            if not path.is_dir():
                raise StoreError(
                    f"{path} is not a directory; pass the run directory that `ntklab run` wrote"
                )
            db = path / DB_NAME
            if not db.is_file():
                raise StoreError(f"{path} is not an ntklab run: it has no {DB_NAME}")
        if write:
            store = cls(db, connect_rw(db))
        else:
            store = cls(db, connect_ro(db))
        try:
            store._check_store()
            if write:
                store._set_wal()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def create(
        cls,
        run_dir: str | Path,
        *,
        config: dict[str, Any],
        config_hash: str,
        meta: dict[str, Any],
        points: list[dict[str, Any]],
        methods: list[dict[str, Any]],
    ) -> RunStore:
        """Create a new run, or reopen one written from the same config (resume).

        An existing store is checked first (its tables, ``PRAGMA quick_check`` and its config
        hash), and nothing is written to a file that fails a check.

        Parameters
        ----------
        config : dict
            The resolved config (JSON-serializable).
        config_hash : str
            Identifies the config; an existing run with another hash is refused.
        meta : dict
            Further meta entries (``assumed``, ``versions``, ``name``, ``n_trials``...).
        points : list of dict
            Sweep points, in order (``[{}]`` without a sweep).
        methods : list of dict
            Each with keys ``method``, ``kind`` and optionally ``label``, ``family``,
            ``depth``, ``parameterization``, ``spec`` (a dict).
        """
        run_dir = make_run_dir(run_dir)
        db = run_dir / DB_NAME
        existed = db.exists() and not (db.is_file() and db.stat().st_size == 0)
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise StoreError(unwritable_dir_message(run_dir, None))
        if existed and db.is_file() and not os.access(db, os.W_OK):
            raise StoreError(readonly_file_message(db))
        store = cls(db, connect_rw(db))  # writable (checkpoint on close) once checked
        try:
            if existed:
                store._check_store()  # read-only checks: a foreign file is never changed
                old_meta = store.meta()
                old = old_meta.get("config_hash")
                if old != config_hash and bool(old_meta.get("only")) != bool(meta.get("only")):
                    kind = "an --only run" if old_meta.get("only") else "a full run"
                    raise StoreError(
                        f"{run_dir} holds {kind} of {old_meta.get('name')}; "
                        + ("an --only run" if meta.get("only") else "a full run")
                        + " needs a run directory of its own: use another --out (or none, "
                        "for the default)"
                    )
                if old != config_hash:
                    raise StoreError(
                        f"{run_dir} holds a run of a different config (hash {str(old)[:12]} vs "
                        f"{config_hash[:12]}); refusing to mix results. Use another --out, or "
                        f"delete {db} to start fresh"
                    )
                store._set_wal()
                return store
            store._set_wal()
            store._create_schema(config, config_hash, meta, points, methods)
        except BaseException:
            store.close()
            raise
        return store

    def _create_schema(self, config, config_hash, meta, points, methods) -> None:
        conn = self._conn
        entries = {
            "schema_version": SCHEMA_VERSION,
            "config": config,
            "config_hash": config_hash,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **meta,
        }
        with self._writing("create the store"), conn:
            conn.execute("BEGIN")  # tables and meta in one transaction
            for statement in SCHEMA_SQL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True, default=str)) for k, v in entries.items()],
            )
            conn.executemany(
                "INSERT INTO points VALUES (?, ?)",
                [(i, json.dumps(p, sort_keys=True, default=str)) for i, p in enumerate(points)],
            )
            conn.executemany(
                "INSERT INTO methods VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        m["method"],
                        m["kind"],
                        m.get("label", m["method"]),
                        m.get("family"),
                        m.get("depth"),
                        m.get("parameterization"),
                        json.dumps(m.get("spec", {}), sort_keys=True, default=str),
                    )
                    for m in methods
                ],
            )
        with self._writing("create the store"):
            self._checkpoint()

    def _set_wal(self) -> None:
        with self._writing("open the store for writing"):
            self._conn.execute("PRAGMA journal_mode=WAL").fetchall()
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self.writable = True

    def close(self) -> None:
        """Close; a writer first checkpoints the WAL into ``results.sqlite``."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.writable:
                self._conn.execute("PRAGMA busy_timeout=2000")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:  # e.g. a full disk: the WAL keeps the trials; the next run
            pass  # (or reader) sees them and the next writer checkpoints them
        finally:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def write_trial(self, record: TrialRecord) -> None:
        """Commit one trial (its results, errors and status) in a single transaction, then
        checkpoint the WAL into ``results.sqlite``.

        A record with ``methods`` set (a retry of failed methods of a ``done`` trial)
        replaces only those methods' rows and errors; if its data could not be made, those
        methods stay failed with the trial's error.
        """
        p, t = record.point, record.trial
        finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        what = f"store trial {t}" + (f" (point {p})" if p else "")
        with self._writing(what, stored=False):
            with self._conn:
                if record.methods is None:
                    self._conn.execute("DELETE FROM results WHERE point=? AND trial=?", (p, t))
                    self._conn.execute("DELETE FROM errors WHERE point=? AND trial=?", (p, t))
                    rows, errors = record.rows, record.errors
                else:
                    names = list(record.methods)
                    marks = ",".join("?" * len(names))
                    for table in ("results", "errors"):
                        self._conn.execute(
                            f"DELETE FROM {table} WHERE point=? AND trial=? AND method IN ({marks})",
                            (p, t, *names),
                        )
                    rows = [r for r in record.rows if r[0] in names]
                    errors = [e for e in record.errors if e[0] in names]
                    if record.status != "done":  # no data this time: the methods stay failed
                        have = {m for m, _ in errors}
                        errors += [(m, record.error or "failed") for m in names if m not in have]
                self._conn.executemany(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    [(p, t, m, k, s, v) for (m, k, s, v) in rows],
                )
                self._conn.executemany(
                    "INSERT INTO errors VALUES (?, ?, ?, ?)",
                    [(p, t, m, msg) for (m, msg) in errors],
                )
                if record.methods is None:
                    self._conn.execute(
                        "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            p,
                            t,
                            record.seed,
                            record.status,
                            record.wall_time,
                            finished_at,
                            socket.gethostname(),
                            record.error,
                        ),
                    )
                else:  # the trial stays done; its wall time counts the retry too
                    self._conn.execute(
                        "UPDATE trials SET wall_time = COALESCE(wall_time, 0) + ?, finished_at=?, "
                        "host=? WHERE point=? AND trial=?",
                        (record.wall_time, finished_at, socket.gethostname(), p, t),
                    )
        # committed: the trial is stored (in the WAL until this copies it into the file)
        with self._writing(what, stored=True):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into ``results.sqlite``, so that the file alone holds every stored
        trial. PASSIVE first (no waiting); a reader that holds an older snapshot can stop it
        part way, and then FULL waits (at most 2 s) for the readers to move on."""
        busy, log, done = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log > 0 and done < log:
            self._conn.execute("PRAGMA busy_timeout=2000")
            try:
                self._conn.execute("PRAGMA wal_checkpoint(FULL)").fetchall()
            finally:
                self._conn.execute("PRAGMA busy_timeout=30000")

    def set_meta(self, key: str, value: Any) -> None:
        """Replace one ``meta`` entry (e.g. ``n_trials`` when ``--trials`` changes)."""
        with self._writing("update the store"), self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True, default=str)),
            )
        with self._writing("update the store"):
            self._checkpoint()

    @contextmanager
    def _writing(self, what: str, stored: bool | None = None):
        """Turn an SQLite error while writing into one clear line (:class:`StoreError`).

        ``stored``: for a trial, whether it was committed before the error (``True``: only
        the checkpoint, copying the WAL into the file, failed; ``False``: the transaction
        failed and was rolled back)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(self._write_failure(exc, what, stored)) from None

    def _write_failure(self, exc: sqlite3.Error, what: str, stored: bool | None = None) -> str:
        try:
            n = self._conn.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
        except sqlite3.Error:
            n = None
        return write_failure_message(self.path, exc, what, stored, n)

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        rows = self._query("SELECT key, value FROM meta")
        return {k: json.loads(v) for k, v in rows}

    def done(self) -> set[tuple[int, int]]:
        """(point, trial) pairs whose status is ``done``."""
        return {
            (p, t) for p, t in self._query("SELECT point, trial FROM trials WHERE status='done'")
        }

    def failed_methods(self) -> dict[tuple[int, int], set[str]]:
        """Methods that raised in ``done`` trials: ``{(point, trial): {method, ...}}``.

        A resume reruns exactly these (trial, method) pairs."""
        out: dict[tuple[int, int], set[str]] = {}
        rows = self._query(
            "SELECT e.point, e.trial, e.method FROM errors e JOIN trials t "
            "ON e.point = t.point AND e.trial = t.trial WHERE t.status = 'done'"
        )
        for p, t, m in rows:
            out.setdefault((p, t), set()).add(m)
        return out

    def points(self) -> pd.DataFrame:
        df = self._frame("SELECT point, params FROM points ORDER BY point")
        df["params"] = df["params"].map(json.loads)
        return df

    def methods(self) -> pd.DataFrame:
        df = self._frame("SELECT * FROM methods")
        df["spec"] = df["spec"].map(json.loads)
        return df

    def trials(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM trials ORDER BY point, trial")

    def results(self, *, final_only: bool = False) -> pd.DataFrame:
        sql = "SELECT * FROM results"
        if final_only:
            sql += f" WHERE step = {FINAL}"
        return self._frame(sql + " ORDER BY point, trial, method, metric, step")

    def errors(self) -> pd.DataFrame:
        return self._frame("SELECT * FROM errors ORDER BY point, trial")

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._read_failure(exc)) from None

    def _frame(self, sql: str) -> pd.DataFrame:
        import pandas as pd

        try:
            return pd.read_sql_query(sql, self._conn)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, sqlite3.Error) else exc
            raise StoreError(self._read_failure(cause)) from None

    def _read_failure(self, exc: BaseException) -> str:
        return read_failure_message(self.path, exc)

    def _check_store(self) -> None:
        """Refuse (one line) a file that is not an ntklab store or fails ``quick_check``."""
        try:
            tables = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            raise StoreError(self._read_failure(exc)) from None
        missing = TABLES - tables
        if missing:
            raise StoreError(
                f"{self.path} is not an ntklab store (missing tables: {', '.join(sorted(missing))})"
            )
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self._read_failure(exc)) from None
        problems = [str(r[0]) for r in rows if r[0] != "ok"]
        if problems:
            first = " ".join(problems[0].split())
            raise StoreError(
                f"{self.path} is corrupted: PRAGMA quick_check found {len(problems)} problem(s) "
                f"(first: {first[:200]}); its results cannot be trusted. Keep it for inspection "
                "and start a new run with another --out"
            )
