"""Where a report may write: one guard for every file it writes (report, CSV tables,
figures).

:func:`check_overwrite` refuses, with one line:

* a file of a run's store (``results.sqlite``, its ``-wal``/``-shm``/``-journal``, the
  run lock) or any SQLite database, even with ``force``;
* an existing file that ntklab did not write, unless ``force``. What "ntklab wrote it"
  means depends on the file: a report carries :data:`REPORT_MARK` near its top
  (:func:`has_report_mark`), a CSV table has the header line of the table that would
  replace it (:func:`same_first_line`), a figure is listed in its directory's record
  (:data:`~ntklab.report.figures.FIGURES_MARK`).

Everything is checked before anything is written: a refused report leaves no file changed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..store import is_sqlite_file, store_owning
from .runs import ReportError

__all__ = [
    "REPORT_MARK",
    "check_overwrite",
    "check_figures_dir",
    "has_report_mark",
    "same_first_line",
    "write_text",
    "move_tables",
]

#: Text at the top of every report file ntklab writes (md, latex, html).
REPORT_MARK = b"ntklab report"


def check_overwrite(
    targets: Iterable[Path],
    *,
    ours: Callable[[Path], bool],
    force: bool,
    other: str = "choose another --out",
) -> None:
    """Raise :class:`ReportError` (one line) if writing ``targets`` would replace a run's
    store or one of its files (:func:`~ntklab.store.store_owning`: existing or not; always)
    or any SQLite database (always), or an existing file ``ours`` does not recognise as
    ntklab's (unless ``force``); ``other`` says what to do instead."""
    for target in map(Path, targets):
        owner = None if target.is_dir() else store_owning(target)
        if owner is None and target.is_file() and is_sqlite_file(target):
            owner = "an SQLite database"
        if owner is not None:
            raise ReportError(
                f"refusing to write the report over {target}: it is {owner}; {other} "
                "(--force never replaces a store)"
            )
        if not target.exists() or target.is_dir():
            continue  # a directory: the write itself fails with a clear error
        if not force and not ours(target):
            raise ReportError(
                f"{target} exists and was not written by ntklab; {other}, or pass --force to "
                "overwrite it"
            )


def check_figures_dir(figures_dir: str | Path | None) -> None:
    """``--figures`` names a directory (made if missing): never a store, never a file, and
    not below a file."""
    if figures_dir is None:
        return
    path = Path(figures_dir)
    owner = None if path.is_dir() else store_owning(path)
    if owner is not None:
        raise ReportError(f"--figures {figures_dir} is {owner}; pass another --figures directory")
    if path.exists() and not path.is_dir():
        raise ReportError(
            f"--figures {figures_dir} is a file, not a directory; pass a directory for the "
            "figures (it is created if missing)"
        )
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ReportError(
            f"--figures {figures_dir}: {blocked} is a file, not a directory; pass another "
            "--figures directory"
        )


def has_report_mark(path: Path) -> bool:
    """True if ``path`` starts (within 4 KiB) with :data:`REPORT_MARK`."""
    try:
        with open(path, "rb") as f:
            return REPORT_MARK in f.read(4096)
    except OSError:
        return False


def _first_line(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.readline()
    except OSError:
        return None


def same_first_line(new: Path) -> Callable[[Path], bool]:
    """A test of "ours" for a table: the existing file has ``new``'s header line."""
    header = _first_line(new)
    return lambda target: _first_line(target) == header


def write_text(path: Path, text: str, *, force: bool) -> None:
    """Write a report file, after :func:`check_overwrite` (ours: :func:`has_report_mark`)."""
    path = Path(path)
    check_overwrite([path], ours=has_report_mark, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write {path}: {exc.strerror or exc}; pass another --out"
        ) from None


def move_tables(write: Callable[[Path], list[Path]], out: Path, *, force: bool) -> list[Path]:
    """Write CSV tables into a staging directory (``write(staging)``), check every target
    in ``out`` (ours: the same header line), then move them into ``out``."""
    out = Path(out)
    check_overwrite([out], ours=lambda _: True, force=True)  # not a store's
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} exists and is not a directory (csv writes DIR/<table>.csv)")
    with tempfile.TemporaryDirectory(prefix="ntklab-csv-") as staging:
        tables = write(Path(staging))
        for table in tables:
            check_overwrite([out / table.name], ours=same_first_line(table), force=force)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for table in tables:
                shutil.move(str(table), str(out / table.name))
        except OSError as exc:
            raise ReportError(
                f"cannot write CSV files to {out}: {exc.strerror or exc}; pass another --out"
            ) from None
        return [out / t.name for t in tables]
