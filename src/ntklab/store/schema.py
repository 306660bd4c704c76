"""What a run's store holds: the file and table names, the ``meta`` keys, the SQL that makes the
tables, and :class:`TrialRecord`, the rows one finished trial writes (the layout is described
in :mod:`ntklab.store`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "FINAL",
    "GENERATOR_METHOD",
    "DB_NAME",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "TABLES",
    "META_KEYS",
    "SCHEMA_SQL",
    "TrialRecord",
]

FINAL = -1
#: ``results.method`` of rows about the trial's data (not a method; a name that config method
#: names, ``[A-Za-z0-9_-]+``, cannot take).
GENERATOR_METHOD = "data.generator"
DB_NAME = "results.sqlite"
LOCK_NAME = ".ntklab.lock"
SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"
TABLES = {"meta", "points", "methods", "trials", "results", "errors"}

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


SCHEMA_SQL = """
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
