"""write_report guards every file it writes with one mechanism (report/outputs.py): never a
store file or SQLite database, never a file ntklab did not write unless ``force``, and
nothing written when it refuses."""

from __future__ import annotations

import shutil

import pytest
from test_report import write_small_run

from ntklab.report import ReportError, load_run, write_report
from ntklab.store import DB_NAME


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    values = {"NN1": [0.2, 0.21, 0.22], "NTKJ1": [0.1, 0.1, 0.11], "K1": [0.15, 0.14, 0.16]}
    return load_run(write_small_run(tmp_path_factory.mktemp("out") / "run", values))


def test_never_over_the_store_or_a_database(run, tmp_path):
    db = run.path / DB_NAME
    before = db.read_bytes()
    other = tmp_path / "copy.db"
    shutil.copy(db, other)
    for target in (db, other):
        for force in (False, True):
            with pytest.raises(ReportError, match="refusing to write the report over"):
                write_report(run, "md", target, figures=False, force=force)
    assert db.read_bytes() == before and other.read_bytes() == before


def test_a_users_file_needs_force_and_nothing_is_written_first(run, tmp_path):
    mine = tmp_path / "notes.md"
    mine.write_text("my notes\n")
    figs = tmp_path / "figs"
    with pytest.raises(ReportError, match="notes.md exists and was not written by ntklab"):
        write_report(run, "md", mine, figures_dir=figs)
    assert mine.read_text() == "my notes\n" and not figs.exists()  # refused before figures
    write_report(run, "md", mine, figures=False, force=True)
    assert mine.read_text().startswith("# ntklab report")
    write_report(run, "md", mine, figures=False)  # its own report: rewritten freely
    # CSV: a table of another header is the user's
    tables = tmp_path / "tables"
    write_report(run, "csv", tables)
    (tables / "main.csv").write_text("mine\n")
    with pytest.raises(ReportError, match="main.csv exists and was not written by ntklab"):
        write_report(run, "csv", tables)
    assert (tables / "main.csv").read_text() == "mine\n"
    write_report(run, "csv", tables, force=True)
    assert (tables / "main.csv").read_text().startswith("method,label,n,")
    assert not (run.path / "report").exists()  # no default figures written by any of these
