"""The durable result store of a run: one SQLite file, one transaction per finished trial.

Layout of ``RUN_DIR/results.sqlite`` (long form; no pickles)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- JSON-encoded values, see META_KEYS
    points(point INTEGER PRIMARY KEY, params TEXT)    -- sweep points: JSON {field: value}; {} if no sweep
    methods(method TEXT PRIMARY KEY, kind TEXT, label TEXT, family TEXT,
            depth INTEGER, parameterization TEXT, spec TEXT)
    trials(point INTEGER, trial INTEGER, seed TEXT, status TEXT, wall_time REAL,
           finished_at TEXT, host TEXT, error TEXT, PRIMARY KEY (point, trial))
    results(point INTEGER, trial INTEGER, method TEXT, metric TEXT, step INTEGER, value REAL,
            PRIMARY KEY (point, trial, method, metric, step))
    errors(point INTEGER, trial INTEGER, method TEXT, message TEXT)

``step`` is :data:`FINAL` (-1) for a final value and the epoch for values on a training
curve. Rows about a trial's data rather than a method use the method name
:data:`GENERATOR_METHOD` (``data.generator``, which no config method can be called): today
only ``generator_jitter``, the jitter the data generator's Cholesky factor needed, stored
only when it is not 0 (so a trial without that row needed none). ``family`` groups methods
across depth for the layer-change analysis (e.g. ``NN``, ``GP``, ``NTKJ``, ``NTKA``,
``NTKB``, ``K1``). A method that raised in a ``done`` trial has
a row in ``errors`` and no results: it is *failed*, and a resume reruns exactly those
(trial, method) pairs (:meth:`RunStore.failed_methods`).

Safety. Only one process writes: :class:`RunLock` holds an exclusive ``fcntl`` lock on
``RUN_DIR/.ntklab.lock`` for the run's lifetime (the kernel drops it when the process dies,
so a killed run never blocks the next). A trial's rows, errors and its ``trials`` row are
committed together and the WAL is checkpointed into ``results.sqlite`` after every trial and
on close, so a ``kill -9`` loses at most the trials in flight and ``results.sqlite`` alone
holds every stored trial (:func:`export` writes a self-contained copy with the backup API).
Readers (:meth:`RunStore.open`) use a read-only connection (``immutable`` when the directory
cannot be written), and nothing that is not an ntklab store is ever written to.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import socket
import sqlite3
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # pandas loads on first use of a table (worker processes never need it)
    import pandas as pd

__all__ = [
    "FINAL",
    "GENERATOR_METHOD",
    "METRICS",
    "DB_NAME",
    "RunStore",
    "TrialRecord",
    "StoreError",
    "RunLock",
    "export",
    "is_run_dir",
    "is_sqlite_file",
    "store_files",
    "store_owning",
]

FINAL = -1
#: ``results.method`` of rows about the trial's data (not a method; a name that config method
#: names, ``[A-Za-z0-9_-]+``, cannot take).
GENERATOR_METHOD = "data.generator"
DB_NAME = "results.sqlite"
LOCK_NAME = ".ntklab.lock"
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
_TABLES = {"meta", "points", "methods", "trials", "results", "errors"}

#: Metric names used in ``results.metric`` (a report may rely on these).
METRICS = {
    "rmse": "test RMSE of the method",
    "train_rmse": "training RMSE",
    "jitter": "diagonal jitter needed by the Cholesky solve (kernel methods; 0 if none)",
    "generator_jitter": "diagonal jitter needed by the Cholesky factor of the data generator's "
    "kernel (method GENERATOR_METHOD; stored only when not 0)",
    "fit_seconds": "wall time of fitting + predicting the method",
    "diverged": "1.0 if the network's training diverged, else 0.0",
    "diverged_epoch": "epoch at which training diverged",
    "lr": "learning rate actually used (after lr='auto')",
    "nn_lin_rms": "RMS(f_NN - f_lin) on test points, f_lin = NTK prediction at the same T and f0",
    "nn_lin_rel": "nn_lin_rms / RMS(f_lin)",
    "nn_mean_rms": "RMS(f_NN - NTK mean prediction at the same T)",
    "nn_mean_rel": "nn_mean_rms / RMS(NTK mean prediction)",
    "kernel_drift": "||Theta_T - Theta_0||_F / ||Theta_0||_F (empirical NTK)",
    "finite_width_error": "||Theta_0 - Theta||_F / ||Theta||_F (empirical vs analytic NTK)",
    "ntk_same_t_rmse": "test RMSE of the NTK prediction at the network's training time",
    "ntk_inf_rmse": "test RMSE of the NTK prediction at T = infinity",
    "ntk_mean_same_t_rmse": "test RMSE of the NTK mean prediction (no f0) at the network's training time",
    "ntk_mean_inf_rmse": "test RMSE of the NTK mean prediction at T = infinity (= kernel regression)",
    "nn_elin_rms": "RMS(f_NN - f_elin), f_elin = linearization with the empirical initial NTK",
    "nn_elin_rel": "nn_elin_rms / RMS(f_elin)",
    "curve_train_loss": "training loss at epoch `step`",
    "curve_test_rmse": "network test RMSE at epoch `step`",
    "curve_ntk_test_rmse": "NTK (same f0) test RMSE at epoch `step`",
}

#: Keys of the ``meta`` table (values JSON-encoded).
META_KEYS = (
    "schema_version",
    "config",  # the resolved config, as a JSON object
    "config_hash",  # sha256 of the canonical resolved config
    "assumed",  # {name: value} of values SPEC marks assumed
    "versions",  # {package: version}
    "created",  # ISO time
    "name",  # study name / preset name
    "n_trials",  # trials per sweep point
)


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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS points(point INTEGER PRIMARY KEY, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS methods(method TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT,
    family TEXT, depth INTEGER, parameterization TEXT, spec TEXT);
CREATE TABLE IF NOT EXISTS trials(point INTEGER NOT NULL, trial INTEGER NOT NULL, seed TEXT,
    status TEXT NOT NULL, wall_time REAL, finished_at TEXT, host TEXT, error TEXT,
    PRIMARY KEY (point, trial));
CREATE TABLE IF NOT EXISTS results(point INTEGER NOT NULL, trial INTEGER NOT NULL,
    method TEXT NOT NULL, metric TEXT NOT NULL, step INTEGER NOT NULL, value REAL,
    PRIMARY KEY (point, trial, method, metric, step));
CREATE TABLE IF NOT EXISTS errors(point INTEGER, trial INTEGER, method TEXT, message TEXT);
"""


class StoreError(RuntimeError):
    """A run directory that cannot be used: not a run, corrupted, or from another config."""


@dataclass
class TrialRecord:
    """Everything one finished trial writes, committed in one transaction.

    Attributes
    ----------
    point, trial : int
        Sweep point index and trial index.
    seed : str
        The trial's seed (e.g. the SeedSequence entropy and spawn key, as text).
    status : {"done", "failed"}
        ``failed`` trials are retried on resume; their partial rows are kept.
    rows : list of (method, metric, step, value)
    errors : list of (method, message)
        Methods that failed inside an otherwise finished trial (stored as failed: retried
        on resume).
    methods : tuple of str, optional
        Set when the record is a retry of only these methods of a ``done`` trial: writing
        it replaces those methods' rows and errors and keeps the others.
    """

    point: int
    trial: int
    seed: str
    status: str = "done"
    wall_time: float = 0.0
    error: str | None = None
    rows: list[tuple[str, str, int, float]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    methods: tuple[str, ...] | None = None

    def add(self, method: str, metric: str, value: float, step: int = FINAL) -> None:
        self.rows.append((method, metric, int(step), float(value)))


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


def _is_ntklab_store(path: Path) -> bool:
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
    return _TABLES <= {r[0] for r in rows}


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
    if resolved.is_file() and _is_ntklab_store(resolved):
        return "an ntklab store (a run's results)"
    return None


class RunLock:
    """Exclusive lock on a run directory for the lifetime of a run.

    ``fcntl.flock`` on ``RUN_DIR/.ntklab.lock``: the kernel releases it when its holder
    exits, however it exits (``kill -9`` included), so a killed run never blocks the next.
    The holder writes its pid and host into the file for the message a second run gets
    (:class:`StoreError`, one line).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(_unwritable_dir_message(self.run_dir, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(self._held_message()) from None
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except OSError:  # e.g. a full disk: the pid is only for another run's message
            pass
        self._fd = fd
        return self

    def _held_message(self) -> str:
        holder = ""
        for _ in range(20):  # the holder may be between truncating and writing its pid
            try:
                holder = self.path.read_text().strip()
            except OSError:
                holder = ""
            if holder:
                break
            time.sleep(0.05)
        pid, _, host = holder.partition(" ")
        who = f"pid {pid}" if pid else "another process"
        if pid and host and host != socket.gethostname():
            who += f" on {host}"
        return (
            f"{self.run_dir} is in use by another ntklab run ({who}); two runs must not write "
            "one directory: wait for it to finish (or stop it), then rerun to resume"
        )

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


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
            store = cls(db, _connect_rw(db))
        else:
            store = cls(db, _connect_ro(db))
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
            raise StoreError(_unwritable_dir_message(run_dir, None))
        if existed and db.is_file() and not os.access(db, os.W_OK):
            raise StoreError(_readonly_file_message(db))
        store = cls(db, _connect_rw(db))  # writable (checkpoint on close) once checked
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
            for statement in _SCHEMA.split(";"):
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
        kind, why = _classify(exc, self.path)
        wal = Path(f"{self.path}-wal")
        try:
            n = self._conn.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
            kept = f"; the {n} trial(s) already stored are intact"
            if stored:
                kept = (
                    f"; all {n} done trial(s), this one included, are stored and intact (the "
                    f"latest only in {wal.name} beside it: keep that file with it)"
                )
            elif stored is False:
                kept = f"; it is not stored, and the {n} trial(s) already stored are intact"
        except sqlite3.Error:
            kept = ""
        if stored:
            what = (
                f"checkpoint {what.removeprefix('store ')} (copy it from {wal.name} into the file)"
            )
        if kind == "full":
            return (
                f"disk full: cannot {what} in {self.path} ({why}){kept}. Free some space, "
                "then rerun the same command to resume"
            )
        if kind == "readonly":
            return _readonly_file_message(self.path, kept)
        if kind == "corrupt":
            return (
                f"{self.path} is corrupted ({exc}){kept}; keep it for inspection and start a "
                "new run with another --out"
            )
        if kind == "busy":
            return f"{self.path} is locked by another process ({exc}); stop it and rerun"
        return f"cannot {what} in {self.path}: {exc}{kept}"

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
        kind, why = _classify(exc, self.path) if isinstance(exc, sqlite3.Error) else ("other", "")
        if kind == "corrupt" or kind == "other":
            return (
                f"{self.path} is corrupted or not an ntklab store ({exc}); keep it for "
                "inspection and start a new run with another --out"
            )
        if kind == "cantopen":
            return f"cannot open {self.path} ({exc}); check that it and its directory can be read"
        if kind == "busy":
            return f"{self.path} is locked by another process ({exc}); try again"
        return f"cannot read {self.path}: {exc}" + (f" ({why})" if why else "")

    def _check_store(self) -> None:
        """Refuse (one line) a file that is not an ntklab store or fails ``quick_check``."""
        try:
            tables = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            raise StoreError(self._read_failure(exc)) from None
        missing = _TABLES - tables
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
            why = _classify(exc, tmp)[1]
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


# ---- connections and error messages ---------------------------------------------------------
def _connect_rw(db: Path) -> sqlite3.Connection:
    """A read-write connection; no pragma yet (a file is checked before anything is written)."""
    try:
        return sqlite3.connect(db, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {db}: {exc}; choose another --out") from None


def _connect_ro(db: Path) -> sqlite3.Connection:
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
            kind, _ = _classify(exc, db)
            if kind in ("readonly", "cantopen") and i + 1 < len(tries):
                conn.close()
                continue
            return conn  # the caller's checks report the problem in one line
    raise AssertionError("unreachable")  # pragma: no cover


def _classify(exc: BaseException, db: Path) -> tuple[str, str]:
    """``(kind, why)`` of an SQLite error: kind in full, readonly, corrupt, busy, cantopen, io,
    other; ``why`` says what filled up when SQLite reports only an I/O error."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    text = str(exc).lower()
    if code == 13 or "disk is full" in text:
        return "full", "no space left on the device"
    if code == 10 or "disk i/o error" in text:
        why = _out_of_space(db)
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


def _out_of_space(db: Path) -> str:
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


def _unwritable_dir_message(run_dir: Path, exc: OSError | None) -> str:
    why = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return (
        f"cannot write to the run directory {run_dir}{why}: it is read-only for this user; "
        "`ntklab status`, `report` and `export` can still read it. To add trials, make it "
        "writable or copy it elsewhere (`ntklab export`) and run there"
    )


def _readonly_file_message(db: Path, kept: str = "") -> str:
    return (
        f"cannot write {db}: the file is read-only{kept}; `ntklab status`, `report` and "
        "`export` can still read it. To add trials, make it writable (chmod u+w) and rerun"
    )
