"""Thread pools of the processes that run trials."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
import torch
from study_helpers import write_tiny
from threadpoolctl import threadpool_info

from ntklab.config import load_config
from ntklab.execution import dask as dask_backend
from ntklab.execution import run_study
from ntklab.execution import threads as thread_pools
from ntklab.execution import trials as trial_tasks


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture
def seen(monkeypatch):
    """(torch threads, BLAS threads) inside every trial this process runs."""
    out: list[tuple[int, set[int]]] = []
    run_trial = trial_tasks.run_trial

    def spy(*args, **kwargs):
        out.append((torch.get_num_threads(), _blas_threads()))
        return run_trial(*args, **kwargs)

    monkeypatch.setattr(trial_tasks, "run_trial", spy)
    return out


def _plan(tmp_path, trials=2):
    return load_config(str(write_tiny(tmp_path, trials=trials)))


@pytest.mark.parametrize("threads", [None, 1])
def test_one_worker_gives_torch_and_blas_all_its_threads(tmp_path, seen, threads):
    before = (torch.get_num_threads(), _blas_threads())
    run_study(_plan(tmp_path), tmp_path / "run", workers=1, threads=threads, echo=None)
    want = threads or os.cpu_count()
    assert seen == [(want, {want})] * 2
    assert (torch.get_num_threads(), _blas_threads()) == before  # restored after the run


def test_concurrent_holders_share_one_setting(monkeypatch):
    calls = []

    def fake_set(threads):
        calls.append(threads)
        return lambda: calls.append("restored")

    monkeypatch.setattr(thread_pools, "_set_threads", fake_set)
    limits = thread_pools.ThreadLimits()
    inside, release = threading.Barrier(3), threading.Event()
    held = []

    def task(n):
        with limits.hold(n) as got:
            held.append(got)
            inside.wait(5)
            release.wait(5)

    workers = [threading.Thread(target=task, args=(n,)) for n in (3, 5)]
    for w in workers:
        w.start()
    inside.wait(5)
    assert calls == [held[0]] and held[0] == held[1]  # set once; the second shares it
    release.set()
    for w in workers:
        w.join(5)
    assert calls == [held[0], "restored"] and limits.threads is None


def test_dask_threads_per_trial_from_the_worker():
    def worker(nthreads, resources):
        return SimpleNamespace(state=SimpleNamespace(nthreads=nthreads, total_resources=resources))

    assert dask_backend.trial_threads(worker(8, {"trials": 1})) == 8
    assert dask_backend.trial_threads(worker(8, {"trials": 2})) == 4
    assert dask_backend.trial_threads(worker(8, {})) == 1  # eight trials at once
    assert dask_backend.trial_threads(worker(1, {})) == 1
    assert dask_backend.trial_threads(worker(8, {}), 3) == 3  # --threads wins


@pytest.mark.slow
def test_dask_worker_processes_get_their_threads_once_when_they_join():
    from distributed import Client, LocalCluster

    def probe(_=None):
        thread_pools.THREADS.sync_thread()  # as a trial does first (dask._dask_trial)
        return torch.get_num_threads(), _blas_threads()

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        resources={"trials": 1},
        processes=True,
        dashboard_address=None,
    ) as cluster:
        with Client(cluster) as client:
            # Dask's nanny default (and torch used in both executor threads before the setting)
            assert client.gather(client.map(probe, range(4), pure=False)) == [(1, {1})] * 4
            dask_backend.register_trial_threads(client, None)
            assert client.submit(probe, pure=False).result() == (2, {2})
            cluster.scale(2)  # a worker that joins later is set up too
            client.wait_for_workers(2)
            assert list(client.run(probe).values()) == [(2, {2})] * 2


def test_in_process_dask_workers_leave_this_process_alone(tmp_path, seen):
    from distributed import Client, LocalCluster

    before = (torch.get_num_threads(), _blas_threads())
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            run_study(_plan(tmp_path), tmp_path / "dask", client=client, echo=None)
    assert seen == [before] * 2
    assert (torch.get_num_threads(), _blas_threads()) == before


def test_a_kernel_leaves_the_threads_of_a_one_thread_worker_alone():
    """numba's first parallel call starts its OpenMP pool with all the cores, which on the
    libgomp torch shares would also become torch's thread count: a worker limited to one
    thread then trained its networks with all cores after its first kernel. Checked in a
    fresh process, where the kernel is numba's first parallel call."""
    import subprocess
    import sys

    code = (
        "import numpy as np, torch, ntklab\n"
        "torch.set_num_threads(1)\n"
        "X = np.eye(6)[:, :3] + 0.5\n"
        "ntklab.Architecture(2).kernels(X)\n"
        "ntklab.Architecture(1).kernels(X, X[:2])\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]
