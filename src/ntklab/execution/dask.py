"""Trials on a Dask cluster (:func:`run_dask`): an existing scheduler or a local cluster
(:func:`connect_dask`); each trial's threads come from its worker (:func:`trial_threads`)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

from ..store import TrialRecord
from .errors import ExecutionError
from .progress import Progress
from .threads import THREADS
from .trials import Task

__all__ = [
    "TRIAL_RESOURCE",
    "connect_dask",
    "probe_scheduler",
    "register_trial_threads",
    "run_dask",
    "trial_threads",
]

#: The Dask worker resource that bounds how many trials a worker runs at once.
TRIAL_RESOURCE = "trials"


def trial_threads(worker, threads: int | None = None) -> int:
    """Threads of a trial on the Dask ``worker``: ``threads`` if given, else the worker's own
    threads per trial it may run at once: ``nthreads / trials`` for a worker started with a
    ``trials`` resource (``dask worker --nthreads 8 --resources trials=1`` runs one trial at
    a time with 8 threads), else 1 (it runs ``nthreads`` trials at once). Never the whole
    machine's count, which a worker may share with others."""
    if threads:
        return threads
    slots = worker.state.total_resources.get(TRIAL_RESOURCE)
    return max(1, int(worker.state.nthreads // slots)) if slots else 1


def register_trial_threads(client, threads: int | None) -> None:
    """Set every worker process's thread pools once, when it joins (a worker plugin, run in
    the worker's main thread, which then owns them: tasks never change them, so trials
    running at once on one worker cannot race). A worker living in this very process (a
    ``processes=False`` cluster) is left alone: this process's settings are the caller's."""
    from distributed import WorkerPlugin

    class TrialThreads(WorkerPlugin):
        name = "ntklab-trial-threads"

        def __init__(self, threads: int | None, client_pid: int):
            self.threads, self.client_pid = threads, client_pid

        def setup(self, worker) -> None:
            _keep_trial_threads(worker, self.threads, self.client_pid)

    client.register_plugin(TrialThreads(threads, os.getpid()))


def _keep_trial_threads(worker, threads: int | None, client_pid: int) -> None:
    """The worker plugin's setup (module-level: workers import it from ntklab)."""
    if os.getpid() != client_pid:
        THREADS.keep(trial_threads(worker, threads))


def _dask_trial(task: Task, device) -> TrialRecord:
    """The task run on a Dask worker (module-level, so workers import it from ntklab); its
    threads were set when the worker joined (:func:`register_trial_threads`)."""
    THREADS.sync_thread()
    return task.run(device)


def _unanswered(scheduler: str, timeout: float, why: str = "") -> str:
    return (
        f"no Dask scheduler answered at {scheduler} within {timeout:g} s{why}; is it running "
        "and is that its address? (start one with `dask scheduler`, or raise --scheduler-timeout)"
    )


def probe_scheduler(scheduler: str, timeout: float) -> None:
    """Raise :class:`ExecutionError` (one line) unless a Dask scheduler at ``scheduler``
    completes distributed's connection handshake within ``timeout`` seconds.

    ``Client(timeout=)`` bounds the TCP connection but not the handshake that follows: a
    port that accepts and never answers (a stray server, a stopped process, a firewall that
    holds the connection) would hang it for good. Here the whole connection, handshake
    included, runs under one deadline in a thread of its own (so a caller's running event
    loop, e.g. a notebook's, is not disturbed).
    """
    import asyncio
    import threading

    from distributed.comm import connect
    from distributed.security import Security

    outcome: list[BaseException | None] = []

    async def attempt() -> None:
        args = Security().get_connection_args("client")  # TLS as the Client would use it
        comm = await asyncio.wait_for(connect(scheduler, timeout=timeout, **args), timeout)
        await comm.close()

    def target() -> None:
        try:
            asyncio.run(attempt())
            outcome.append(None)
        except BaseException as exc:  # reported to the caller below
            outcome.append(exc)

    thread = threading.Thread(target=target, name="ntklab-dask-probe", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)  # wait_for has cancelled the attempt by then
    if not outcome:  # pragma: no cover - the attempt ignored its cancellation
        raise ExecutionError(_unanswered(scheduler, timeout))
    exc = outcome[0]
    if exc is None:
        return
    if isinstance(exc, ValueError):  # a malformed address or an unknown protocol
        raise ExecutionError(f"--scheduler {scheduler!r} is not a Dask address: {exc}") from None
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        raise ExecutionError(_unanswered(scheduler, timeout)) from None
    chain = [exc, exc.__cause__, exc.__context__]
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
    why = "connection refused" if refused else type(exc).__name__
    raise ExecutionError(_unanswered(scheduler, timeout, f" ({why})")) from None


def connect_dask(
    scheduler: str | None = None, dask_local: int | None = None, *, timeout: float = 5.0
):
    """A ``distributed.Client`` for ``scheduler`` or a new LocalCluster of ``dask_local`` workers.

    The local cluster's workers share the machine's cores (``cores // dask_local`` threads
    each) and run one trial at a time (a ``trials`` resource of 1), so a trial gets all its
    worker's threads. Raises :class:`ExecutionError` with one line when the scheduler cannot
    be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        probe_scheduler(scheduler, timeout)  # the handshake too, which Client leaves unbounded
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except Exception as exc:
            raise ExecutionError(
                _unanswered(scheduler, timeout, f" ({type(exc).__name__})")
            ) from None
        return client
    n = int(dask_local)
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=max(1, (os.cpu_count() or 1) // n),
        resources={TRIAL_RESOURCE: 1},
        processes=True,
        dashboard_address=None,
    )
    return Client(cluster)


def run_dask(
    client, tasks: Iterator[Task], device, threads: int | None, progress: Progress
) -> Iterator[TrialRecord]:
    """Trials on Dask, at most twice the cluster's threads (at least 8) submitted at a time."""
    from distributed import as_completed

    def window() -> int:
        try:
            return max(8, 2 * sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - the scheduler went away; as_completed says so
            return 8

    futures: dict[Any, Task] = {}
    completed = as_completed()
    register_trial_threads(client, threads)
    # workers that declare a `trials` resource run that many trials at once (trial_threads)
    workers = client.scheduler_info().get("workers", {}).values()
    bounded = any(TRIAL_RESOURCE in (w.get("resources") or {}) for w in workers)
    resources = {TRIAL_RESOURCE: 1} if bounded else None

    def submit(n: int) -> None:
        for task in itertools.islice(tasks, max(0, n)):
            fut = client.submit(
                _dask_trial, task, device, pure=False, resources=resources
            )  # fmt: skip
            futures[fut] = task
            completed.add(fut)

    try:
        submit(window())
        for fut in completed:
            task = futures.pop(fut)
            try:
                record = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the trial is retried on resume
                record = task.failed(exc)
            yield record
            submit(window() - len(futures))
    finally:
        for fut in futures:
            fut.cancel()
