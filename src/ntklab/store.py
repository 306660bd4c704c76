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
curve. ``family`` groups methods across depth for the layer-change analysis (e.g. ``NN``,
``GP``, ``NTKJ``, ``NTKA``, ``NTKB``, ``K1``). Only one process (the study's writer)
writes; a trial's rows, errors and its ``trials`` row are committed together, so a
``kill -9`` loses at most the trials in flight.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "FINAL",
    "METRICS",
    "DB_NAME",
    "RunStore",
    "TrialRecord",
    "StoreError",
    "is_run_dir",
]

FINAL = -1
DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1

#: Metric names used in ``results.metric`` (a report may rely on these).
METRICS = {
    "rmse": "test RMSE of the method",
    "train_rmse": "training RMSE",
    "jitter": "diagonal jitter needed by the Cholesky solve (kernel methods)",
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
        Methods that failed inside an otherwise finished trial.
    """

    point: int
    trial: int
    seed: str
    status: str = "done"
    wall_time: float = 0.0
    error: str | None = None
    rows: list[tuple[str, str, int, float]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, method: str, metric: str, value: float, step: int = FINAL) -> None:
        self.rows.append((method, metric, int(step), float(value)))


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class RunStore:
    """Read/write access to ``RUN_DIR/results.sqlite``.

    Use :meth:`create` (new run or resume of the same config) in the writer and
    :meth:`open` (read-only use) in reports.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, run_dir: str | Path) -> RunStore:
        """Open an existing run for reading; :class:`StoreError` if it is not one."""
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if not run_dir.is_dir():
            raise StoreError(
                f"{run_dir} is not a directory; pass the run directory that `ntklab run` wrote"
            )
        if not db.is_file():
            raise StoreError(f"{run_dir} is not an ntklab run: it has no {DB_NAME}")
        conn = _connect(db)
        store = cls(db, conn)
        store._check_integrity()
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
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create run directory {run_dir}: {exc.strerror}; choose another --out"
            ) from None
        db = run_dir / DB_NAME
        existed = db.is_file()
        try:
            conn = _connect(db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {db}: {exc}; choose another --out") from None
        store = cls(db, conn)
        if existed:
            store._check_integrity()
            old_meta = store.meta()
            old = old_meta.get("config_hash")
            if old != config_hash and bool(old_meta.get("only")) != bool(meta.get("only")):
                store.close()
                kind = "an --only run" if old_meta.get("only") else "a full run"
                raise StoreError(
                    f"{run_dir} holds {kind} of {old_meta.get('name')}; "
                    + ("an --only run" if meta.get("only") else "a full run")
                    + " needs a run directory of its own: use another --out (or none, for the "
                    "default)"
                )
            if old != config_hash:
                raise StoreError(
                    f"{run_dir} holds a run of a different config (hash {str(old)[:12]} vs "
                    f"{config_hash[:12]}); refusing to mix results. Use another --out, or delete "
                    f"{db} to start fresh"
                )
            return store
        try:
            with conn:
                conn.executescript(_SCHEMA)
                entries = {
                    "schema_version": SCHEMA_VERSION,
                    "config": config,
                    "config_hash": config_hash,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    **meta,
                }
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
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {db}: {exc}") from None
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def write_trial(self, record: TrialRecord) -> None:
        """Commit one trial (its results, errors and status) in a single transaction."""
        with self._conn:
            self._conn.execute(
                "DELETE FROM results WHERE point=? AND trial=?", (record.point, record.trial)
            )
            self._conn.execute(
                "DELETE FROM errors WHERE point=? AND trial=?", (record.point, record.trial)
            )
            self._conn.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                [(record.point, record.trial, m, k, s, v) for (m, k, s, v) in record.rows],
            )
            self._conn.executemany(
                "INSERT INTO errors VALUES (?, ?, ?, ?)",
                [(record.point, record.trial, m, msg) for (m, msg) in record.errors],
            )
            self._conn.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.point,
                    record.trial,
                    record.seed,
                    record.status,
                    record.wall_time,
                    time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    socket.gethostname(),
                    record.error,
                ),
            )

    def set_meta(self, key: str, value: Any) -> None:
        """Replace one ``meta`` entry (e.g. ``n_trials`` when ``--trials`` extends a run)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                (key, json.dumps(value, sort_keys=True, default=str)),
            )

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        rows = self._query("SELECT key, value FROM meta")
        return {k: json.loads(v) for k, v in rows}

    def done(self) -> set[tuple[int, int]]:
        """(point, trial) pairs whose status is ``done``."""
        return {
            (p, t) for p, t in self._query("SELECT point, trial FROM trials WHERE status='done'")
        }

    def points(self) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT point, params FROM points ORDER BY point", self._conn)
        df["params"] = df["params"].map(json.loads)
        return df

    def methods(self) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT * FROM methods", self._conn)
        df["spec"] = df["spec"].map(json.loads)
        return df

    def trials(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM trials ORDER BY point, trial", self._conn)

    def results(self, *, final_only: bool = False) -> pd.DataFrame:
        sql = "SELECT * FROM results"
        if final_only:
            sql += f" WHERE step = {FINAL}"
        return pd.read_sql_query(sql + " ORDER BY point, trial, method, metric, step", self._conn)

    def errors(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM errors ORDER BY point, trial", self._conn)

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is corrupted or not an ntklab store ({exc}); start a new run with another --out"
            ) from None

    def _check_integrity(self) -> None:
        try:
            tables = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path} is corrupted or not an SQLite database ({exc}); move it away and start a new run"
            ) from None
        missing = {"meta", "points", "methods", "trials", "results", "errors"} - tables
        if missing:
            raise StoreError(
                f"{self.path} is not an ntklab store (missing tables: {', '.join(sorted(missing))})"
            )


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=30.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError:
        pass  # a corrupted file: _check_integrity reports it
    return conn
