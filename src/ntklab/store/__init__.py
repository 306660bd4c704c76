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

Safety. Only one process writes: :class:`RunLock` holds an exclusive file lock (filelock's
``flock``) on ``RUN_DIR/.ntklab.lock`` for the run's lifetime (the kernel drops it when the
process dies, so a killed run never blocks the next). A trial's rows, errors and its ``trials`` row are
committed together and the WAL is checkpointed into ``results.sqlite`` after every trial and
on close, so a ``kill -9`` loses at most the trials in flight and ``results.sqlite`` alone
holds every stored trial (:func:`export` writes a self-contained copy with the backup API).
Readers (:meth:`RunStore.open`) use a read-only connection (``immutable`` when the directory
cannot be written), and nothing that is not an ntklab store is ever written to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .backup import export
from .db import RunStore
from .lock import RunLock
from .messages import StoreError
from .messages import assumed_line as assumed_line
from .ownership import is_run_dir, is_sqlite_file, store_files, store_owning
from .ownership import make_run_dir as make_run_dir
from .schema import DB_NAME, FINAL, GENERATOR_METHOD, TrialRecord
from .schema import LOCK_NAME as LOCK_NAME
from .schema import META_KEYS as META_KEYS
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .schema import SQLITE_HEADER as SQLITE_HEADER

if TYPE_CHECKING:
    from ..metrics import METRICS  # imported on first use (module __getattr__ below)

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


def __getattr__(name: str):
    # METRICS lives in ntklab.metrics, which needs numpy: imported on first use, so that
    # opening a store (``ntklab status``) loads no numpy.
    if name == "METRICS":
        from ..metrics import METRICS

        return METRICS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
