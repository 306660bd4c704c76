"""Trials on a local pool of worker processes (:func:`run_pool`), forked from the fork server
of :mod:`~ntklab.execution.forkserver`: each worker gets ``threads`` threads, ignores
Ctrl-C, exits when the main process dies and reports the method it is running through a
queue."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..store import TrialRecord
from .errors import ExecutionError
from .forkserver import pool_context
from .progress import Progress
from .threads import THREADS
from .trials import Task, batches, run_batch

__all__ = ["run_pool"]

_WORKER: dict[str, Any] = {}  # per worker process: its progress queue and its device


def _init_worker(
    threads: int, progress_queue, parent: int | None = None, devices=(None,), started=None
) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the workers itself,
    # so a worker ignores it (no tracebacks from every worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker runs thread pools (torch, BLAS, numba): a process it starts must be spawned,
    # never forked. (It would otherwise inherit the fork server's method, and numba would
    # then make a named lock that a terminated worker leaves behind, and the resource
    # tracker warns about at exit.)
    multiprocessing.set_start_method("spawn", force=True)
    if parent is not None:
        _exit_with_parent(parent)
    THREADS.keep(threads)
    _WORKER["queue"] = progress_queue
    _WORKER["device"] = take_device(devices, started)


def take_device(devices: Sequence[str | None], started=None) -> str | None:
    """The device of the worker starting now: worker ``i`` (in start order, counted in the
    shared ``started`` value) takes ``devices[i]``, one worker per GPU on a CUDA machine."""
    index = 0
    if started is not None:
        with started.get_lock():
            index = started.value
            started.value += 1
    return devices[index % len(devices)]


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this worker within ``interval`` seconds of ``parent`` (the main process) being
    gone, however it died: the worker's own parent (the main process, or the fork server,
    which exits with it) changes, or ``parent`` no longer exists."""
    ppid = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != ppid or not _alive(parent):
                os._exit(1)

    threading.Thread(target=watch, name="ntklab-exit-with-parent", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - it exists (another user's process)
        return True
    return True


def _pool_batch(batch: list[Task], stacked: bool | None) -> list[TrialRecord]:
    q = _WORKER.get("queue")

    def on_method(point: int, trial: int, name: str) -> None:
        if q is not None:
            try:
                q.put_nowait((point, trial, name))
            except Exception:  # progress is best effort
                pass

    return run_batch(batch, _WORKER.get("device"), stacked, on_method)


@contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread meanwhile: a worker process started here inherits the
    blocked signal (Ctrl-C is the main process's to handle), and a Ctrl-C pressed meanwhile
    is delivered when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_pool(
    tasks: Iterator[Task],
    devices: Sequence[str | None],
    threads: int,
    progress: Progress,
    stack_trials: int = 1,
    stacked: bool | None = None,
) -> Iterator[TrialRecord]:
    """Trials on a process pool (:func:`~ntklab.execution.forkserver.pool_context`) of
    ``len(devices)`` workers, worker ``i`` training its networks on ``devices[i]``,
    ``stack_trials`` whole trials per task (:func:`batches`); at most ``2 * workers`` tasks
    submitted at a time."""
    workers = len(devices)
    ctx = pool_context()
    progress_queue = ctx.Queue()
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(threads, progress_queue, os.getpid(), tuple(devices), ctx.Value("i", 0)),
    )
    pending = batches(tasks, stack_trials)
    running: dict[cf.Future, list[Task]] = {}
    try:
        while True:
            try:
                with _sigint_blocked():
                    for batch in itertools.islice(pending, max(0, 2 * workers - len(running))):
                        running[pool.submit(_pool_batch, batch, stacked)] = batch
            except cf.process.BrokenProcessPool:
                raise ExecutionError(_worker_died(itertools.chain(*running.values()))) from None
            if not running:
                break
            finished, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            _drain(progress_queue, progress)
            for fut in finished:
                batch = running.pop(fut)
                try:
                    records = fut.result()
                except cf.process.BrokenProcessPool:
                    lost = [*batch, *itertools.chain(*running.values())]
                    raise ExecutionError(_worker_died(lost)) from None
                except Exception as exc:  # pragma: no cover - run_trials catches everything
                    records = [task.failed(exc) for task in batch]
                yield from records
    finally:
        # Stop every worker, idle, still starting or busy, before the progress queue goes:
        # a worker still starting would open the queue's semaphores after the queue had
        # unlinked them (the "SemLock FileNotFoundError" traceback after a finished run).
        _stop_pool(pool)
        progress_queue.close()
        progress_queue.join_thread()


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what is queued and terminate the workers (idle, still
    starting, or in the middle of a long trial, which ``shutdown`` would wait for)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(5)
        if proc.is_alive():  # pragma: no cover - SIGTERM is not caught in workers
            proc.kill()
            proc.join(1)


def _worker_died(tasks) -> str:
    trials = sorted({(t.point, t.trial) for t in tasks})
    names = ", ".join(f"{t}" + (f" (point {p})" if p else "") for p, t in trials[:6])
    more = f" and {len(trials) - 6} more" if len(trials) > 6 else ""
    return (
        f"a worker process died while trial(s) {names}{more} were running or queued (killed, "
        "or out of memory); the finished trials are stored. If memory ran out, rerun the same "
        "command with fewer --workers (or smaller networks); otherwise just rerun it to resume"
    )


def _drain(progress_queue, progress: Progress) -> None:
    while True:
        try:
            point, trial, name = progress_queue.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        progress.method(point, trial, name)
