"""Running a study: trials on a local process pool or a Dask cluster, one writer, resume.

The main process is the only writer of ``RUN_DIR/results.sqlite``: trials run elsewhere
(worker processes, Dask workers) and send back a :class:`~ntklab.store.TrialRecord`, which
the main process commits in one transaction as soon as it arrives. Re-running the same
command skips the trials already ``done``; ``failed`` trials are rerun, and so are exactly
the (trial, method) pairs whose method raised. So a ``kill -9`` loses only the trials in
flight.

Faults. The run holds an exclusive lock on its directory (:class:`~ntklab.store.RunLock`;
a second run is refused with the holder's pid). Trials are planned lazily (``--trials``
may be huge, and may be lowered later: that changes only what is planned). SIGTERM is
handled like Ctrl-C: one line, the workers are stopped, the store is checkpointed and
closed. Workers ignore Ctrl-C (the main process stops them) and exit when the main process
dies, even by ``kill -9``.

Backends
--------
local (default)
    ``concurrent.futures.ProcessPoolExecutor`` (spawn) with ``workers`` processes
    (default ``os.cpu_count()``, at most the number of pending trials). Each worker gives
    torch and numpy's BLAS ``cores // workers`` threads each, so that workers × threads ≤
    cores (:func:`limit_threads`); with one worker the trials run in the main process with
    all the cores, and its thread settings are restored afterwards.
Dask
    ``scheduler="tcp://HOST:PORT"`` submits the trials to an existing cluster (e.g. one made
    by dask-jobqueue on SLURM); ``dask_local=N`` starts a ``LocalCluster`` of N worker
    processes with ``cores // N`` threads each, one trial at a time. A trial's threads come
    from its worker (:func:`_dask_threads`): its ``nthreads`` divided by the trials it runs
    at once (start workers with ``--resources trials=1`` to give each trial all of a worker's
    threads), never from the whole machine. Worker nodes need ntklab installed.

Network methods run on CUDA when the process running the trial has it.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import os
import platform
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from .config import StudyPlan
from .store import (
    DB_NAME,
    RunLock,
    RunStore,
    StoreError,
    TrialRecord,
    assumed_line,
    is_run_dir,
    make_run_dir,
)
from .study import run_trial

__all__ = [
    "ExecutionError",
    "Interrupted",
    "RunSummary",
    "Progress",
    "run_study",
    "run_status",
    "versions",
]


class ExecutionError(RuntimeError):
    """A run that cannot start or continue (bad options, unreachable scheduler, dead worker)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM, after stopping its workers and
    checkpointing its store. ``signal`` is ``"SIGINT"`` or ``"SIGTERM"``; ``stored`` the
    number of ``done`` trials in the store (``None`` if unknown)."""

    def __init__(self, signal_name: str = "SIGINT", stored: int | None = None):
        super().__init__(signal_name)
        self.signal = signal_name
        self.stored = stored


@dataclass
class RunSummary:
    """What :func:`run_study` did."""

    out: Path
    total: int
    skipped: int
    done: int
    failed: int
    wall_time: float
    failures: list[str] = field(default_factory=list)
    #: failed (trial, method) pairs among ``failed`` (a trial counts as failed if any failed)
    failed_methods: int = 0
    #: failures that ran out of memory (rerunning unchanged will not help)
    memory_errors: int = 0


def versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    out = {"python": platform.python_version()}
    for pkg in (
        "ntklab",
        "numpy",
        "scipy",
        "torch",
        "scikit-learn",
        "pandas",
        "pydantic",
        "dask",
        "distributed",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "not installed"
    return out


def _methods_table(plan: StudyPlan) -> list[dict[str, Any]]:
    """One row per method for the store's ``methods`` table.

    A sweep may change a method's depth, parameterization or (default) label from point to
    point; such a field is stored as NULL (and the label as the method's name), never as
    the base config's value, so a report cannot mistake a depth-2 point for depth 1.
    """
    rows = []
    for m in plan.config.methods:
        variants = [next(v for v in p.config.methods if v.name == m.name) for p in plan.points]

        def common(field: str, variants=variants):
            values = {getattr(v, field) for v in variants}
            return values.pop() if len(values) == 1 else None

        rows.append(
            {
                "method": m.name,
                "kind": m.kind,
                "label": common("label") or m.name,
                "family": common("family"),
                "depth": common("layers"),
                "parameterization": common("parameterization"),
                "spec": m.spec(),
            }
        )
    return rows


def open_store(plan: StudyPlan, out: str | Path) -> RunStore:
    """Create the run directory's store, or reopen it for a resume of the same config."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory; choose another --out")
    store = RunStore.create(
        out,
        config=plan.resolved,
        config_hash=plan.config_hash,
        meta={
            "assumed": plan.assumed,
            "versions": versions(),
            "name": plan.name,
            "n_trials": plan.trials,
            "source": plan.source,
            "only": list(plan.only) if plan.only else None,
            "reductions": plan.reductions,
        },
        points=[p.params for p in plan.points],
        methods=_methods_table(plan),
    )
    try:
        if plan.trials != int(store.meta().get("n_trials") or 0):  # --trials changes the plan
            store.set_meta("n_trials", plan.trials)  # (stored trials beyond it are kept)
            store.set_meta("config", plan.resolved)
    except BaseException:
        store.close()
        raise
    return store


# ---- progress -----------------------------------------------------------------------------
def _fmt_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Progress of a run: a one-line display on a terminal, plain log lines otherwise.

    Parameters
    ----------
    total : int
        Trials in the study (all points).
    already : int
        Trials done before this invocation (resume).
    stream : file, default sys.stdout
    tty : bool, optional
        Force the terminal display on or off (default: ``stream.isatty()``).
    points : int, default 1
        Sweep points; log lines name the point only when there are several.
    """

    def __init__(
        self,
        total: int,
        already: int = 0,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        points: int = 1,
    ):
        self.total = total
        self.points = points
        self.done = already
        self.already = already
        self.failed = 0
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.running: dict[tuple[int, int], str] = {}
        self._finished: set[tuple[int, int]] = set()

    def _eta(self) -> str:
        finished = self.done + self.failed - self.already
        remaining = self.total - self.done
        if finished <= 0:
            return "?"
        return _fmt_seconds((time.monotonic() - self.start) / finished * remaining)

    def _line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        running = ", ".join(
            f"t{t}{'' if p == 0 else f'@p{p}'} {m}" for (p, t), m in sorted(self.running.items())
        )
        failed = f" failed {self.failed}" if self.failed else ""
        return (
            f"[{self.done}/{self.total}] {pct:3.0f}%{failed} elapsed {_fmt_seconds(time.monotonic() - self.start)}"
            f" ETA {self._eta()}" + (f" | {running}" if running else "")
        )

    def _draw(self) -> None:
        if self.tty:
            width = 150
            self.stream.write("\r\x1b[K" + self._line()[:width])
            self.stream.flush()

    def method(self, point: int, trial: int, method: str) -> None:
        """A trial has started running ``method``."""
        if (point, trial) in self._finished:  # a late message from a worker
            return
        self.running[(point, trial)] = method
        self._draw()

    def finished(self, record: TrialRecord) -> None:
        """A trial's record was stored."""
        self.running.pop((record.point, record.trial), None)
        self._finished.add((record.point, record.trial))
        if record.status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.tty:
            if record.status != "done":
                self.stream.write(
                    f"\r\x1b[Ktrial {record.trial} (point {record.point}) failed: {record.error}\n"
                )
            self._draw()
            return
        where = f" (point {record.point})" if self.points > 1 else ""
        status = "done" if record.status == "done" else f"FAILED: {record.error}"
        errors = (
            f"; {len(record.errors)} method error(s): "
            + "; ".join(f"{m}: {msg}" for m, msg in record.errors)
            if record.errors
            else ""
        )
        print(
            f"{time.strftime('%H:%M:%S')} trial {record.trial}{where} {status} in "
            f"{record.wall_time:.1f}s{errors} [{self.done}/{self.total}, ETA {self._eta()}]",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self._line() + "\n")
            self.stream.flush()


# ---- workers ------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}  # per worker process: its progress queue


class _ThreadLimits:
    """This process's thread pools for running trials: torch's and numpy's BLAS, set here only.

    Every path that runs trials sets them here, under one lock, so two changes never race in
    one process: a worker process (pool or Dask) sets them once for its life (:meth:`keep`);
    a run in the caller's own process holds them meanwhile (:meth:`hold`). The first holder
    sets both pools to its ``threads``, later holders share that setting, and the last one
    to leave restores what the process had before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._restore: Callable[[], None] | None = None
        self.threads: int | None = None

    def keep(self, threads: int) -> int:
        """Hold ``threads`` for the rest of this process's life (a worker process); returns
        the number in effect."""
        with self._lock:
            if self._holders == 0:
                _set_threads(threads)  # never restored
                self.threads = threads
            self._holders += 1
            return self.threads

    def sync_thread(self) -> None:
        """Make the calling thread's torch use the number this process holds, if any.

        torch's OpenMP thread count is per thread once a thread has used torch, so a Dask
        executor thread that ran torch before the worker's setting was made would keep its
        old count; this re-applies the same number (no other change)."""
        with self._lock:
            if self.threads is None:
                return
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    @contextmanager
    def hold(self, threads: int) -> Iterator[int]:
        """Run the block with ``threads`` threads for torch and BLAS (or the setting already
        held in this process); yields the number in effect."""
        with self._lock:
            if self._holders == 0:
                self._restore = _set_threads(threads)
                self.threads = threads
            self._holders += 1
            held = self.threads
        try:
            yield held
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._restore is not None:
                    self._restore()
                    self._restore, self.threads = None, None


def _set_threads(threads: int) -> Callable[[], None]:
    """Give torch and numpy's BLAS ``threads`` threads each; returns a function that puts
    back what they had. (A trial runs its linear algebra and its network training one after
    the other, so both may use all the cores the process is given.)"""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    blas = threadpool_limits(limits=threads, user_api="blas")
    torch.set_num_threads(threads)

    def restore() -> None:
        torch.set_num_threads(before)
        blas.restore_original_limits()

    return restore


_THREADS = _ThreadLimits()


def limit_threads(threads: int):
    """A context manager: torch and numpy's BLAS get ``threads`` threads each meanwhile (or
    share the setting that another trial of this process holds); see :class:`_ThreadLimits`."""
    return _THREADS.hold(threads)


def _dask_threads(worker, threads: int | None = None) -> int:
    """Threads of a trial on the Dask ``worker``: ``threads`` if given, else the worker's own
    threads per trial it may run at once: ``nthreads / trials`` for a worker started with a
    ``trials`` resource (``dask worker --nthreads 8 --resources trials=1`` runs one trial at
    a time with 8 threads), else 1 (it runs ``nthreads`` trials at once). Never the whole
    machine's count, which a worker may share with others."""
    if threads:
        return threads
    slots = worker.state.total_resources.get(TRIAL_RESOURCE)
    return max(1, int(worker.state.nthreads // slots)) if slots else 1


def _register_dask_threads(client, threads: int | None) -> None:
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
            _keep_dask_threads(worker, self.threads, self.client_pid)

    client.register_plugin(TrialThreads(threads, os.getpid()))


def _keep_dask_threads(worker, threads: int | None, client_pid: int) -> None:
    """The worker plugin's setup (module-level: workers import it from ntklab)."""
    if os.getpid() != client_pid:
        _THREADS.keep(_dask_threads(worker, threads))


#: The Dask worker resource that bounds how many trials a worker runs at once.
TRIAL_RESOURCE = "trials"


def _init_worker(threads: int, progress_queue, parent: int | None = None) -> None:
    # Ctrl-C reaches the whole process group: the main process stops the workers itself,
    # so a worker ignores it (no tracebacks from every worker).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _exit_with_parent(parent)
    _THREADS.keep(threads)
    _WORKER["queue"] = progress_queue


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Exit this worker as soon as ``parent`` (the main process) is gone, however it died."""

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="ntklab-exit-with-parent", daemon=True).start()


def _pool_trial(
    config: dict, point: int, trial: int, device, methods: tuple[str, ...] | None = None
) -> TrialRecord:
    q = _WORKER.get("queue")

    def on_method(name: str) -> None:
        if q is not None:
            try:
                q.put_nowait((point, trial, name))
            except Exception:  # progress is best effort
                pass

    return _trial(config, point, trial, device, methods, on_method)


def _dask_trial(
    config: dict,
    point: int,
    trial: int,
    device,
    methods: tuple[str, ...] | None = None,
) -> TrialRecord:
    """The task run on a Dask worker (module-level, so workers import it from ntklab); its
    threads were set when the worker joined (:func:`_register_dask_threads`)."""
    _THREADS.sync_thread()
    return _trial(config, point, trial, device, methods)


def _trial(config, point, trial, device, methods, on_method=None) -> TrialRecord:
    """:func:`run_trial`, all methods or (a retry) only ``methods``, marked on the record."""
    record = run_trial(
        config, point=point, trial=trial, device=device, on_method=on_method, methods=methods
    )
    record.methods = tuple(methods) if methods is not None else None
    return record


#: (point config, point, trial, methods to retry or None for the whole trial)
Task = tuple[dict, int, int, "tuple[str, ...] | None"]


def _run_serial(
    tasks: Iterator[Task], device, threads: int, progress: Progress
) -> Iterator[TrialRecord]:
    with limit_threads(threads):  # this process, all cores by default; restored after
        for config, point, trial, methods in tasks:
            yield _trial(
                config,
                point,
                trial,
                device,
                methods,
                on_method=lambda name, p=point, t=trial: progress.method(p, t, name),
            )


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


def _run_pool(
    tasks: Iterator[Task], workers: int, device, threads: int, progress: Progress
) -> Iterator[TrialRecord]:
    """Trials on a spawn process pool, at most ``2 * workers`` submitted at a time."""
    ctx = multiprocessing.get_context("spawn")
    progress_queue = ctx.Queue()
    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(threads, progress_queue, os.getpid()),
    )
    running: dict[cf.Future, Task] = {}
    try:
        while True:
            try:
                with _sigint_blocked():
                    for task in itertools.islice(tasks, max(0, 2 * workers - len(running))):
                        config, point, trial, methods = task
                        fut = pool.submit(_pool_trial, config, point, trial, device, methods)
                        running[fut] = task
            except cf.process.BrokenProcessPool:
                raise ExecutionError(_worker_died(running.values())) from None
            if not running:
                break
            finished, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            _drain(progress_queue, progress)
            for fut in finished:
                _, point, trial, methods = running.pop(fut)
                try:
                    record = fut.result()
                except cf.process.BrokenProcessPool:
                    lost = [(None, point, trial, methods), *running.values()]
                    raise ExecutionError(_worker_died(lost)) from None
                except Exception as exc:  # pragma: no cover - run_trial catches everything
                    record = _failed(point, trial, exc, methods)
                yield record
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
    trials = sorted({(t[1], t[2]) for t in tasks})
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


def _failed(
    point: int, trial: int, exc: BaseException, methods: tuple[str, ...] | None = None
) -> TrialRecord:
    return TrialRecord(
        point=point,
        trial=trial,
        seed="",
        status="failed",
        error=f"{type(exc).__name__}: {exc}"[:500],
        methods=tuple(methods) if methods is not None else None,
    )


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
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except Exception as exc:
            raise ExecutionError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout:g}s "
                f"({type(exc).__name__}); is it running? (start one with `dask scheduler`)"
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


def _run_dask(
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
    _register_dask_threads(client, threads)
    # workers that declare a `trials` resource run that many trials at once (_dask_threads)
    workers = client.scheduler_info().get("workers", {}).values()
    bounded = any(TRIAL_RESOURCE in (w.get("resources") or {}) for w in workers)
    resources = {TRIAL_RESOURCE: 1} if bounded else None

    def submit(n: int) -> None:
        for task in itertools.islice(tasks, max(0, n)):
            config, point, trial, methods = task
            fut = client.submit(
                _dask_trial, config, point, trial, device, methods, pure=False,
                resources=resources,
            )  # fmt: skip
            futures[fut] = task
            completed.add(fut)

    try:
        submit(window())
        for fut in completed:
            _, point, trial, methods = futures.pop(fut)
            try:
                record = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the trial is retried on resume
                record = _failed(point, trial, exc, methods)
            yield record
            submit(window() - len(futures))
    finally:
        for fut in futures:
            fut.cancel()


def _plan(plan: StudyPlan, store: RunStore) -> tuple[Iterator[Task], int, int, int]:
    """What this invocation runs, lazily (no object per trial not yet started).

    Returns ``(tasks, n_tasks, n_complete, n_retry)``: the tasks in trial order (a planned
    trial not yet done runs whole; a done trial with failed methods reruns those alone),
    their number, the number of planned trials complete, and how many tasks are retries.
    """
    done = store.done()
    retry = store.failed_methods()
    n_points, n_trials = len(plan.points), plan.trials

    def planned(key: tuple[int, int]) -> bool:
        return 0 <= key[0] < n_points and 0 <= key[1] < n_trials

    n_done = sum(planned(k) for k in done)
    n_retry = sum(planned(k) for k in retry)
    n_tasks = n_points * n_trials - n_done + n_retry

    def tasks() -> Iterator[Task]:
        for point in plan.points:
            point_config = point.config.model_dump(exclude_none=True)
            for trial in range(n_trials):
                key = (point.index, trial)
                if key in retry:
                    yield (point_config, point.index, trial, tuple(sorted(retry[key])))
                elif key not in done:
                    yield (point_config, point.index, trial, None)

    return tasks(), n_tasks, n_done - n_retry, n_retry


@contextmanager
def _signals_interrupt():
    """Ctrl-C (SIGINT) and SIGTERM raise :class:`Interrupted` in the main thread, once: a
    repeat while the run is stopping is ignored. Signals already ignored stay ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: list[str] = []

    def handler(signum, frame):
        if hit:
            return
        hit.append(signal.Signals(signum).name)
        raise Interrupted(hit[0])

    previous = {}
    for sig, default in (
        (signal.SIGINT, signal.default_int_handler),
        (signal.SIGTERM, signal.SIG_DFL),
    ):
        if signal.getsignal(sig) is default:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _is_memory_error(message: str | None) -> bool:
    text = (message or "").lower()
    return "memoryerror" in text or "out of memory" in text or "outofmemory" in text


# ---- the run ------------------------------------------------------------------------------
def run_study(
    plan: StudyPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    client=None,
    device=None,
    progress: Progress | None = None,
    echo: Callable[[str], None] | None = print,
) -> RunSummary:
    """Run (or resume) every pending trial of ``plan`` and store it in ``out``.

    Pending are the planned trials not yet ``done`` and, in ``done`` trials, the methods
    that failed (rerun alone). Trials stored beyond ``plan.trials`` are kept.

    Parameters
    ----------
    plan : StudyPlan
        From :func:`ntklab.config.load_config`.
    out : path
        The run directory (created; an existing one of the same config is resumed, one of
        another config is refused with :class:`~ntklab.store.StoreError`, and so is one that
        another run holds).
    workers : int, optional
        Local worker processes (default ``os.cpu_count()``); 1 runs in this process.
    threads : int, optional
        torch and BLAS threads per local worker (default ``max(1, os.cpu_count() // workers)``);
        on Dask, per worker process (default: from the worker, see :func:`_dask_threads`).
    scheduler : str, optional
        Address of a Dask scheduler, ``tcp://HOST:PORT``.
    dask_local : int, optional
        Start a Dask ``LocalCluster`` with this many worker processes.
    client : distributed.Client, optional
        Use this Dask client (for tests and notebooks).
    device : optional
        Device for network methods (``None``: CUDA when available).
    progress : Progress, optional
    echo : callable, optional
        Where the start-of-run lines go (``None``: nowhere).

    Returns
    -------
    RunSummary

    Raises
    ------
    Interrupted
        On Ctrl-C or SIGTERM (in the main thread), after stopping the workers and
        checkpointing the store.
    """
    say = echo or (lambda _line: None)
    backends = sum(x is not None for x in (scheduler, dask_local, client))
    if backends > 1:
        raise ExecutionError("use only one of --scheduler and --dask-local")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ExecutionError(f"--workers must be a positive integer; got {workers!r}")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ExecutionError(f"--threads must be a positive integer; got {threads!r}")
    if dask_local is not None and (
        isinstance(dask_local, bool) or not isinstance(dask_local, int) or dask_local < 1
    ):
        raise ExecutionError(f"--dask-local must be a positive integer; got {dask_local!r}")
    if scheduler is not None and "://" not in scheduler:
        raise ExecutionError(f"--scheduler must look like tcp://HOST:PORT; got {scheduler!r}")

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory; choose another --out")
    if is_run_dir(out) and (out / DB_NAME).stat().st_size > 0:
        RunStore.open(out).close()  # check it read-only before writing anything there
    make_run_dir(out)
    with _signals_interrupt(), RunLock(out):
        store = None
        try:
            store = open_store(plan, out)
            return _execute(
                plan, out, store, workers, threads, scheduler, dask_local, client, device,
                progress, say,
            )  # fmt: skip
        except KeyboardInterrupt as exc:
            stored = None
            if store is not None:
                try:
                    stored = len(store.done())
                except StoreError:
                    pass
            raise Interrupted(getattr(exc, "signal", "SIGINT"), stored) from None
        finally:
            if store is not None:
                store.close()


def _execute(
    plan, out, store, workers, threads, scheduler, dask_local, client, device, progress, say
) -> RunSummary:
    started = time.monotonic()
    own_client = None
    records = None
    tasks, n_tasks, complete, n_retry = _plan(plan, store)
    total = len(plan.points) * plan.trials
    summary = RunSummary(Path(out), total, complete, 0, 0, 0.0)
    progress = progress or Progress(total, complete, points=len(plan.points))
    say(
        f"run {plan.name} ({plan.source}) -> {Path(out) / DB_NAME}: {len(plan.config.methods)} methods, "
        f"{len(plan.points)} point(s) x {plan.trials} trials"
        + (f"; {complete} already done, {n_tasks} to run" if complete or n_retry else "")
        + (f" ({n_retry} only to retry their failed methods)" if n_retry else "")
    )
    say(assumed_line(plan.assumed))
    if plan.only:
        say(f"only: {', '.join(plan.only)} (of the config's methods)")
    for line in plan.reductions:
        say(f"reduced from preset {plan.config.study.reduced_from}: {line}")
    if not n_tasks:
        say("nothing to do: every trial is already done")
        return summary
    try:
        if client is not None or scheduler is not None or dask_local is not None:
            if client is None:
                own_client = client = connect_dask(scheduler, dask_local)
            where = scheduler or (
                f"local cluster of {dask_local} workers" if dask_local else "client"
            )
            say(f"executing on Dask ({where})")
            records = _run_dask(client, tasks, device, threads, progress)
        else:
            n_workers = min(workers or os.cpu_count() or 1, n_tasks)
            threads = threads or max(1, (os.cpu_count() or 1) // n_workers)
            say(f"executing locally: {n_workers} worker(s) x {threads} thread(s)")
            if n_workers == 1:
                records = _run_serial(tasks, device, threads, progress)
            else:
                records = _run_pool(tasks, n_workers, device, threads, progress)
        for record in records:
            store.write_trial(record)
            progress.finished(record)
            _count(summary, record)
        progress.close()
        summary.wall_time = time.monotonic() - started
        return summary
    except KeyboardInterrupt:
        if progress.tty:
            progress.stream.write("\n")
            progress.stream.flush()
        raise
    finally:
        if records is not None:
            records.close()  # stops the workers now if the run did not finish
        if own_client is not None:
            cluster = getattr(own_client, "cluster", None)
            own_client.close()
            if cluster is not None:
                cluster.close()


def _count(summary: RunSummary, record: TrialRecord, keep: int = 50) -> None:
    """Add a stored record to the summary: a trial with a failed method counts as failed."""
    where = f"trial {record.trial} (point {record.point})"
    lines = []
    if record.status != "done":
        lines.append((f"{where}: {record.error}", record.error))
    lines += [(f"{where} {method}: {message}", message) for method, message in record.errors]
    if not lines:
        summary.done += 1
        return
    summary.failed += 1
    summary.failed_methods += len(record.errors)
    for line, message in lines:
        summary.memory_errors += _is_memory_error(message)
        if len(summary.failures) < keep:
            summary.failures.append(line)


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """Summary of a run directory: trials done/failed/total, per-method counts, wall time.

    ``done``, ``failed`` and ``total`` count the planned trials (``n_trials`` per point);
    ``beyond`` counts done trials stored past it (a later run asked for fewer trials), and
    ``failed_methods`` the failed (trial, method) pairs in done trials (rerun retries them).
    The store is opened read-only."""
    with RunStore.open(run_dir) as store:
        meta = store.meta()
        trials = store.trials()
        points = store.points()
        methods = store.methods()
        results = store.results(final_only=True)
        errors = store.errors()
        failed_methods = store.failed_methods()
    n_trials = int(meta.get("n_trials", 0))
    total = n_trials * len(points)
    all_done = trials[trials.status == "done"]
    done = all_done[all_done.trial < n_trials]
    rmse = results[results.metric == "rmse"]
    per_method = []
    for name in methods.method:
        per_method.append(
            {
                "method": name,
                "rmse_rows": int((rmse.method == name).sum()),
                "errors": int((errors.method == name).sum()) if len(errors) else 0,
            }
        )
    return {
        "name": meta.get("name"),
        "config_hash": meta.get("config_hash"),
        "points": len(points),
        "trials_per_point": n_trials,
        "total": total,
        "done": int(len(done)),
        "failed": int(((trials.status == "failed") & (trials.trial < n_trials)).sum()),
        "beyond": int(len(all_done) - len(done)),
        "failed_methods": sum(len(v) for v in failed_methods.values()),
        "wall_time_sum": float(done.wall_time.sum()) if len(done) else 0.0,
        "wall_time_mean": float(done.wall_time.mean()) if len(done) else 0.0,
        "methods": per_method,
        "assumed": meta.get("assumed", {}),
    }
