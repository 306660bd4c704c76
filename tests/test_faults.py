"""Fault injection: no result is ever lost or misreported.

Each fault runs a tiny study in a subprocess (``python -m ntklab.cli run ...``) and is then
compared, bit for bit (timing metrics excluded: ``study_helpers.TIMING``), with the same
study run without interruption: kill -9 of the main process and of a worker, SIGTERM and
Ctrl-C, two concurrent runs, a read-only directory and file, a full disk (a file-size
limit in the child), a corrupted page, a report pointed at the store. Then the slips of
the keyboard and the other items of the issue, in process.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from study_helpers import done_trials, result_table, write_tiny

import ntklab
from ntklab.cli import main
from ntklab.config import load_config
from ntklab.execution import run_study
from ntklab.store import DB_NAME, RunLock, RunStore, StoreError, TrialRecord

TRIALS = 5
#: long enough (about 0.3 s a trial) that a run can be interrupted in the middle
SLOW = dict(trials=TRIALS, width=32, epochs=1500)


#: the children import the ntklab under test, whatever their working directory
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        [str(Path(ntklab.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    ),
}


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _started(ref, tmp_path: Path, *args, done: int = 1) -> tuple[Path, subprocess.Popen]:
    """A run of the ``ref`` config in ``tmp_path/run`` (``args`` added), once ``done`` trials
    are stored: ``(its directory, its process)``."""
    out = tmp_path / "run"
    proc = _start(ref[0], out, *args)
    _wait_for(proc, out, done)
    return out, proc


def _start(cfg, out, *args, preexec_fn=None) -> subprocess.Popen:
    """``ntklab run cfg --out out --threads 1 args`` in a child process (its own session),
    as a command started from a terminal: SIGINT at its default even where the tests run
    with it ignored (a background job of a non-interactive shell ignores it, and its
    children inherit that; Ctrl-C then rightly does nothing)."""

    def child() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    cmd = [sys.executable, "-m", "ntklab.cli", "run", str(cfg), "--out", str(out)]
    return subprocess.Popen(
        [*cmd, "--threads", "1", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=child,
        env=ENV,
    )


def _done(out: Path) -> int:
    """Done trials in ``results.sqlite`` alone (its WAL ignored: what a copy would hold)."""
    return done_trials(out / DB_NAME, immutable=True)


def _wait_for(proc: subprocess.Popen, out: Path, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _done(out) < n:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()[1].decode()}")
        assert time.monotonic() < deadline, f"{n} trial(s) not done within {timeout} s"
        time.sleep(0.02)


def _children(pid: int, *, all_descendants: bool = True) -> list[int]:
    """The descendants of ``pid`` (the fork server, its workers, the resource tracker), or
    only its children, from /proc/*/stat."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            kids.append(int(stat.parent.name))
    if not all_descendants:
        return kids
    return kids + [g for k in kids for g in _children(k)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _workers(pid: int) -> list[int]:
    """The pool workers of run ``pid``: the children of its fork server."""
    kids = _children(pid, all_descendants=False)
    servers = [k for k in kids if b"forkserver" in _cmdline(k)]
    assert len(servers) == 1, [_cmdline(k) for k in kids]
    return _children(servers[0], all_descendants=False)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _assert_all_exit(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, f"orphaned: {[p for p in pids if _alive(p)]}"
        time.sleep(0.1)


def _one_line(stderr: bytes | str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert text.count("\n") == 1 and text.startswith("error: "), text
    return text


def _same(run_dir: Path, ref: pd.DataFrame, trials=None) -> None:
    """The run's results equal the reference's (for ``trials``), bit for bit."""
    got = result_table(run_dir)
    want = ref if trials is None else ref[ref.trial.isin(list(trials))].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def _trials(run_dir: Path) -> set[int]:
    with RunStore.open(run_dir) as store:
        return {t for _, t in store.done()}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The study run without interruption (in process, one worker): config, dir, table."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg = write_tiny(tmp, **SLOW)
    run_study(load_config(str(cfg)), tmp / "run", workers=1, threads=1, echo=None)
    return cfg, tmp / "run", result_table(tmp / "run")


def _resume(cfg, out, *args) -> None:
    result = _cli("run", cfg, "--out", out, "--workers", 1, "--threads", 1, *args)
    assert result.exit_code == 0, result.output


# ---- kill -9, SIGTERM, Ctrl-C ------------------------------------------------------------------
@pytest.mark.slow
def test_kill9_of_the_main_process(ref, tmp_path):
    """Workers die with it; results.sqlite alone holds every stored trial; resume is exact."""
    cfg, _, table = ref
    out, proc = _started(ref, tmp_path, "--workers", 2)
    workers = _workers(proc.pid)
    assert len(workers) == 2
    everyone = _children(proc.pid)  # the workers, their fork server, the resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    _assert_all_exit(everyone)
    stored = _trials(out)
    assert 1 <= len(stored) < TRIALS
    _same(out, table, stored)
    copy = tmp_path / "copy"  # the WAL is checkpointed after every trial: results.sqlite
    copy.mkdir()  # alone lacks at most a trial committed just before the kill
    shutil.copy(out / DB_NAME, copy / DB_NAME)
    copied = _trials(copy)
    assert copied and copied <= stored and len(stored - copied) <= 1
    _resume(cfg, out)  # the killed run's lock does not block
    _same(out, table)


@pytest.mark.slow
def test_kill9_of_a_worker(ref, tmp_path):
    cfg, _, table = ref
    out, proc = _started(ref, tmp_path, "--workers", 2)
    workers = _workers(proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "a worker process died while trial(s)" in _one_line(err)
    _assert_all_exit(workers)
    _same(out, table, _trials(out))
    _resume(cfg, out)
    _same(out, table)


@pytest.mark.slow
def test_ctrl_c_in_pool_mode_with_a_billion_trials_then_fewer(ref, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) in pool mode: one
    line, no worker tracebacks, the workers stopped. --trials 1e9 is planned lazily, and a
    later, lower --trials is allowed: it changes only what is planned."""
    cfg, _, table = ref
    out, proc = _started(ref, tmp_path, "--workers", 2, "--trials", 1_000_000_000, done=2)
    rss = int(Path(f"/proc/{proc.pid}/status").read_text().split("VmHWM:")[1].split()[0])
    assert rss < 1_000_000, f"{rss} kB: trials are planned eagerly"
    workers = _workers(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    out_text, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    line = _one_line(err)
    assert "interrupted by Ctrl-C" in line and "rerun the same command to resume" in line
    assert "Traceback" not in out_text.decode()
    _assert_all_exit(workers)
    stored = _trials(out)
    assert len(stored) >= 2
    assert "1000000000 total" in _cli("status", out).stdout
    _same(out, table, stored & set(range(TRIALS)))
    _resume(cfg, out, "--trials", 3)
    assert {0, 1, 2} <= _trials(out) and stored <= _trials(out)  # nothing stored is lost
    assert "3 total (0 to run)" in _cli("status", out).stdout
    _same(out, table, _trials(out) & set(range(TRIALS)))


# ---- two runs at once, SIGTERM ---------------------------------------------------------------
@pytest.mark.slow
def test_a_second_run_is_refused_and_sigterm_stops_the_first(ref, tmp_path):
    cfg, _, table = ref
    out, first = _started(ref, tmp_path, "--workers", 1)
    os.kill(first.pid, signal.SIGSTOP)  # keep it in the middle of the run
    try:
        second = _cli("run", cfg, "--out", out, "--workers", 1)  # this process: the second run
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.exit_code == 2
    assert f"in use by another ntklab run (pid {first.pid})" in _one_line(second.stderr)
    assert "trial" not in second.stdout
    os.kill(first.pid, signal.SIGTERM)  # handled like Ctrl-C
    _, err = first.communicate(timeout=60)
    assert first.returncode == 2
    assert "interrupted by SIGTERM" in _one_line(err)
    stored = _trials(out)
    assert 1 <= len(stored) < TRIALS
    _same(out, table, stored)
    copy = tmp_path / "copy"  # checkpointed on the way out: results.sqlite alone has them
    copy.mkdir()
    shutil.copy(out / DB_NAME, copy / DB_NAME)
    assert _trials(copy) == stored
    _resume(cfg, out)
    _same(out, table)


# ---- read-only, full disk, corrupted ---------------------------------------------------------
_AS_USER = """
import sys
from click.testing import CliRunner
from ntklab.cli import main
for args in {commands!r}:
    r = CliRunner().invoke(main, args)
    print(repr((r.exit_code, r.stdout, r.stderr)))
"""


def _without_root_override() -> None:
    """In a child before exec: as root, drop the capabilities that ignore file permissions
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that chmod applies as for any user."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(77)


def _as_other_user(commands: list[list[str]], home: Path) -> list[tuple[int, str, str]]:
    """Run ntklab commands in a child process to which file permissions apply."""
    proc = subprocess.run(
        [sys.executable, "-c", _AS_USER.format(commands=commands)],
        capture_output=True,
        env={**ENV, "MPLCONFIGDIR": str(home)},
        preexec_fn=_without_root_override,
        timeout=120,
        cwd=home,
    )
    if proc.returncode == 77:
        pytest.skip("root without CAP_SETPCAP: cannot make file permissions apply")
    assert proc.returncode == 0, proc.stderr.decode()
    return [eval(line) for line in proc.stdout.decode().splitlines()]


#: One local worker: a run refused before its first trial then starts no pool fork server.
ONE = ["--workers", "1"]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_read_only_directory_and_file(ref, tmp_path):
    cfg, run, table = ref
    base = tmp_path
    try:
        ro_dir, ro_file, home = base / "ro-dir", base / "ro-file", base / "home"
        for d in (ro_dir, ro_file):
            d.mkdir()
            shutil.copy(run / DB_NAME, d / DB_NAME)
            os.chmod(d / DB_NAME, 0o444)
        shutil.copy(cfg, base / "tiny.toml")
        os.chmod(ro_dir, 0o555)
        os.chmod(ro_file, 0o777)
        home.mkdir()
        before = _snapshot(ro_dir)
        results = _as_other_user(
            [
                ["status", str(ro_dir)],
                ["report", str(ro_dir), "--no-figures"],
                ["run", str(base / "tiny.toml"), "--out", str(ro_dir), "--trials", "8", *ONE],
                ["export", str(ro_dir), str(home / "copy.sqlite")],
                ["status", str(ro_file)],
                ["run", str(base / "tiny.toml"), "--out", str(ro_file), "--trials", "8", *ONE],
                ["export", str(ro_file), str(ro_dir / "copy.sqlite")],
            ],
            home,
        )
        (st, out, err), (rep, md, rerr), (rc, _, rline), (ex, eout, eerr) = results[:4]
        assert st == 0 and f"trials: {TRIALS} done" in out, err
        assert rep == 0 and re.search(r"^\| NTKB1 +\|", md, re.M), rerr
        assert rc == 2 and "read-only" in _one_line(rline) and "corrupt" not in rline
        assert ex == 0 and f"exported {TRIALS} done trial(s)" in eout, eerr
        assert _snapshot(ro_dir) == before  # nothing written, not even a lock file
        _same(home / "copy.sqlite", table)
        (st2, out2, _), (rc2, _, rline2), (ex2, _, eline2) = results[4:]
        assert ex2 == 2 and f"its directory {ro_dir} is not writable" in _one_line(eline2)
        assert "unable to open" not in eline2
        assert st2 == 0 and f"trials: {TRIALS} done" in out2
        assert rc2 == 2 and "the file is read-only" in _one_line(rline2)
        _same(ro_file, table)
    finally:
        for d in (base / "ro-dir", base / "ro-file"):
            if d.exists():
                os.chmod(d, 0o755)


@pytest.mark.slow
def test_full_disk(ref, tmp_path):
    """A file-size limit (``ulimit -f``) in the child: one line "disk full"; the trials
    stored stay intact, and a rerun with room completes the study exactly."""
    cfg, run, table = ref
    out = tmp_path / "run"
    limit = (run / DB_NAME).stat().st_size // 2

    def ulimit_f():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _start(cfg, out, "--workers", 1, preexec_fn=ulimit_f)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    line = _one_line(err)
    assert line.startswith("error: disk full") and "I/O error" not in line
    # it says exactly what is stored: a trial committed to the WAL but not copied into
    # results.sqlite is stored ("this one included"); one rolled back is not
    said = re.search(r"(?:all|the) (\d+) (?:done )?trial\(s\)", line)
    assert said and ("are stored and intact" in line or "already stored are intact" in line)
    stored = _trials(out)
    assert int(said.group(1)) == len(stored), line
    trial = int(re.search(r"trial (\d+)", line).group(1))  # the one being written
    assert ("this one included" if trial in stored else "it is not stored") in line, line
    assert 1 <= len(stored) < TRIALS
    _same(out, table, stored)
    _resume(cfg, out)
    _same(out, table)


def test_corrupted_page(ref, tmp_path):
    """quick_check when a run starts: one line, before any compute; nothing is changed."""
    cfg, run, _ = ref
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(run / DB_NAME, out / DB_NAME)
    data = bytearray((out / DB_NAME).read_bytes())
    page = 4096
    n_pages = len(data) // page
    start = page * (n_pages // 2)
    data[start : start + page] = np.random.default_rng(0).bytes(page)
    (out / DB_NAME).write_bytes(bytes(data))
    before = (out / DB_NAME).read_bytes()
    for args in (
        ["run", cfg, "--out", out, "--workers", 1, "--trials", 8],
        ["status", out],
        ["report", out, "--no-figures"],
        ["export", out, tmp_path / "copy.sqlite"],
    ):
        result = _cli(*args)
        assert result.exit_code == 2, args
        assert "corrupted" in _one_line(result.stderr), args
        assert "trial 6" not in result.stdout  # nothing was computed
    assert (out / DB_NAME).read_bytes() == before
    assert not (out / ".ntklab.lock").exists()  # refused before taking the run's lock
    assert not (tmp_path / "copy.sqlite").exists()


def test_a_report_is_never_written_over_the_store(ref, tmp_path):
    _, run, table = ref
    out = tmp_path / "run"
    shutil.copytree(run, out)
    db = out / DB_NAME
    before = db.read_bytes()
    for target in (db, Path(f"{db}-wal"), tmp_path / "other.sqlite"):
        if target.name == "other.sqlite":
            shutil.copy(db, target)
        for force in ([], ["--force"]):
            result = _cli("report", out, "--no-figures", "-o", target, *force)
            assert result.exit_code == 2
            assert "refusing to write the report over" in _one_line(result.stderr)
    assert db.read_bytes() == before
    _same(out, table)
    # a file ntklab did not write: only with --force; its own report: rewritten freely
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    result = _cli("report", out, "--no-figures", "-o", notes)
    assert result.exit_code == 2 and "not written by ntklab" in _one_line(result.stderr)
    assert notes.read_text() == "my notes\n"
    assert _cli("report", out, "--no-figures", "-o", notes, "--force").exit_code == 0
    assert notes.read_text().startswith("# ntklab report")
    assert _cli("report", out, "--no-figures", "-o", notes).exit_code == 0
    # CSV tables: a same-named file that is not ntklab's table is kept
    tables = tmp_path / "tables"
    assert _cli("report", out, "-f", "csv", "-o", tables).exit_code == 0
    name = sorted(tables.glob("*.csv"))[0]
    assert _cli("report", out, "-f", "csv", "-o", tables).exit_code == 0  # its own: fine
    name.write_text("mine\n")
    result = _cli("report", out, "-f", "csv", "-o", tables)
    assert result.exit_code == 2 and "not written by ntklab" in _one_line(result.stderr)
    assert name.read_text() == "mine\n"
    # export: never over the run's own files; a self-contained copy otherwise
    result = _cli("export", out, db, "--force")
    assert result.exit_code == 2 and "a file of the run itself" in result.stderr
    copy = tmp_path / "copy.sqlite"
    assert _cli("export", out, copy).exit_code == 0
    assert not Path(f"{copy}-wal").exists()
    _same(copy, table)
    result = _cli("export", out, copy)
    assert result.exit_code == 2 and "--force" in result.stderr
    assert db.read_bytes() == before


def test_a_foreign_sqlite_file_is_never_modified(tmp_path):
    cfg = write_tiny(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    conn = sqlite3.connect(out / DB_NAME)
    conn.execute("CREATE TABLE other(x)")
    conn.execute("INSERT INTO other VALUES (1)")
    conn.commit()
    conn.close()
    before = _snapshot(out)
    for args in (["run", cfg, "--out", out], ["status", out], ["report", out]):
        result = _cli(*args)
        assert result.exit_code == 2 and "not an ntklab store" in _one_line(result.stderr)
    assert _snapshot(out) == before  # still journal_mode=delete, no lock file left
    with pytest.raises(StoreError, match="not an ntklab store"):
        RunStore.open(out)


# ---- a failing method ----------------------------------------------------------------------------
def test_a_failed_method_is_failed_and_retried_alone(tmp_path, monkeypatch):
    """A method that raises (out of memory) is stored as failed; the run exits 2 naming it
    with advice that fits; a rerun retries exactly the failed (trial, method) pairs."""
    import ntklab.execution.trials as trial_tasks
    import ntklab.study.methods as study

    cfg = write_tiny(tmp_path, trials=3)
    whole = tmp_path / "whole"
    run_study(load_config(str(cfg)), whole, workers=1, threads=1, echo=None)

    out = tmp_path / "run"
    network_method = study._network_method

    def out_of_memory(method, ctx, record, *, trial, **kw):
        if trial == 1:
            raise MemoryError("out of memory allocating 390 MB")
        return network_method(method, ctx, record, trial=trial, **kw)

    monkeypatch.setattr(study, "_network_method", out_of_memory)
    result = _cli("run", cfg, "--out", out, "--workers", 1, "--threads", 1)
    assert result.exit_code == 2
    assert "0 failed" not in result.stdout
    assert "(2 trials run now, 0 before, 1 failed (1 failed method run(s))" in result.stdout
    line = result.stderr.splitlines()[-1]
    assert line.startswith("error: 1 trial(s) failed (trial 1 (point 0) NN1)")
    assert "out of memory" in line and "rerunning unchanged will fail again" in line
    with RunStore.open(out) as store:
        assert store.failed_methods() == {(0, 1): {"NN1"}}
        assert "MemoryError" in store.errors().message.item()
    status = _cli("status", out).stdout
    assert "failed methods: 1 (trial, method) pair(s)" in status

    monkeypatch.setattr(study, "_network_method", network_method)
    calls = []
    real_trial = trial_tasks.run_trial

    def spy(config, **kw):
        calls.append((kw["trial"], kw.get("methods")))
        return real_trial(config, **kw)

    monkeypatch.setattr(trial_tasks, "run_trial", spy)
    result = _cli("run", cfg, "--out", out, "--workers", 1, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert "2 already done, 1 to run (1 only to retry their failed methods)" in result.stdout
    assert calls == [(1, ("NN1",))]
    with RunStore.open(out) as store:
        assert store.failed_methods() == {} and len(store.errors()) == 0
    pd.testing.assert_frame_equal(result_table(out), result_table(whole), check_exact=True)


def test_a_retry_whose_data_fails_keeps_the_trial_and_its_other_methods(tmp_path):
    from ntklab.store import RunStore as Store

    with Store.create(
        tmp_path,
        config={},
        config_hash="h",
        meta={"n_trials": 1},
        points=[{}],
        methods=[{"method": "A", "kind": "ntk"}, {"method": "B", "kind": "ntk"}],
    ) as store:
        rec = TrialRecord(point=0, trial=0, seed="s", wall_time=1.0)
        rec.add("A", "rmse", 0.5)
        rec.errors.append(("B", "MemoryError: x"))
        store.write_trial(rec)
        retry = TrialRecord(
            point=0, trial=0, seed="s", status="failed", error="boom", methods=("B",)
        )
        store.write_trial(retry)
        assert store.done() == {(0, 0)}
        assert store.failed_methods() == {(0, 0): {"B"}}
        assert store.results().method.tolist() == ["A"]
        fixed = TrialRecord(point=0, trial=0, seed="s", wall_time=2.0, methods=("B",))
        fixed.add("B", "rmse", 0.25)
        fixed.add("A", "rmse", 99.0)  # not part of the retry: ignored
        store.write_trial(fixed)
        assert store.failed_methods() == {}
        assert store.results().set_index("method").value.to_dict() == {"A": 0.5, "B": 0.25}
        assert store.trials().wall_time.item() == 3.0


# ---- slips of the keyboard -----------------------------------------------------------------------
def test_a_directory_as_the_config(ref, tmp_path):
    cfg, run, _ = ref
    result = _cli("run", tmp_path)
    assert result.exit_code == 2
    line = _one_line(result.stderr)
    assert "is a directory, not a config file or preset" in line and "not found" not in line
    result = _cli("run", run)
    assert result.exit_code == 2
    assert "is a run directory, not a config; to resume it" in _one_line(result.stderr)
    assert f"ntklab run {cfg} --out {run}" in result.stderr


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_noise_is_refused(tmp_path, value):
    result = _cli(
        "run", write_tiny(tmp_path), "--out", tmp_path / "run", "--set", f"data.noise={value}"
    )
    assert result.exit_code == 2
    assert "data.noise" in _one_line(result.stderr)
    assert not (tmp_path / "run").exists()


def test_non_symmetric_ntk_train_is_refused():
    from ntklab.predict import gradient_descent_mse, gradient_descent_mse_ensemble

    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    K = A @ A.T + np.eye(6)
    y = rng.standard_normal(6)
    with pytest.raises(ValueError, match="ntk_train must be symmetric"):
        gradient_descent_mse(np.triu(K), K, y, lr=0.1, steps=10)
    with pytest.raises(ValueError, match="ntk_train must be symmetric"):
        gradient_descent_mse_ensemble(
            np.triu(K), K, y, lr=0.1, steps=10, nngp_train=K, nngp_test_train=K
        )
    K_round = K + 1e-13 * np.max(np.abs(K)) * np.triu(np.ones((6, 6)), 1)  # rounding: fine
    gradient_descent_mse(K_round, K, y, lr=0.1, steps=10)


def test_no_command_writes_over_another_runs_store(ref, tmp_path):
    """export and report refuse a path that is, or belongs to, another run's store or
    directory, with --force too, while that run holds its lock; a user's file is replaced."""
    _, run, table = ref
    victim = tmp_path / "victim"
    shutil.copytree(run, victim)
    db = victim / DB_NAME
    copy = tmp_path / "copy.sqlite"  # an exported store: a store too
    assert _cli("export", run, copy).exit_code == 0
    before = db.read_bytes(), copy.read_bytes()
    with RunLock(victim):
        for target in (db, Path(f"{db}-wal"), Path(f"{db}-journal"), victim / ".ntklab.lock"):
            result = _cli("export", run, target, "--force")
            assert result.exit_code == 2, result.output
            line = _one_line(result.stderr)
            assert f"a file of the store of the run in {victim}" in line and "--force" in line
            result = _cli("report", run, "--no-figures", "-o", target, "--force")
            assert result.exit_code == 2 and "refusing to write the report" in result.stderr
        result = _cli("export", run, victim, "--force")
        assert result.exit_code == 2 and "the run directory" in _one_line(result.stderr)
        wal = Path(f"{db}-journal")  # a directory made there would block the victim's store
        for args in (
            ["run", ref[0], "--out", wal, *ONE],
            ["report", run, "--figures", wal],
            ["report", run, "-f", "csv", "-o", wal],
        ):
            result = _cli(*args)
            assert result.exit_code == 2, (args, result.output)
            assert f"a file of the store of the run in {victim}" in _one_line(result.stderr)
        assert not wal.exists()
        result = _cli("export", run, copy, "--force")
        assert result.exit_code == 2 and "an ntklab store" in _one_line(result.stderr)
    assert (db.read_bytes(), copy.read_bytes()) == before
    assert not Path(f"{db}-journal").exists()
    _same(victim, table)
    mine = tmp_path / "mine.bin"
    mine.write_bytes(b"a user's file")
    assert _cli("export", run, mine, "--force").exit_code == 0
    _same(mine, table)
