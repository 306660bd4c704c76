"""Running a study (:func:`run_study`): what is pending (:func:`plan_tasks`), on which
backend, with every record stored by this process as it arrives, and a clean stop on Ctrl-C
or SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..config import StudyPlan
from ..store import (
    DB_NAME,
    RunLock,
    RunStore,
    StoreError,
    TrialRecord,
    assumed_line,
    is_run_dir,
    make_run_dir,
    store_owning,
)
from .dask import connect_dask, probe_scheduler, run_dask
from .devices import local_layout
from .errors import ExecutionError, Interrupted
from .memory import check_networks_fit
from .pool import run_pool
from .progress import Progress
from .runstore import open_store
from .trials import Task, run_serial

__all__ = ["RunSummary", "run_study", "plan_tasks"]


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


def task_costs(plan: StudyPlan, store: RunStore):
    """The estimated cost (:class:`~.cost.TrialCosts`) of the planned trials not yet done,
    for the ETA."""
    from .cost import TrialCosts

    configs = [point.config for point in plan.points]
    return TrialCosts(configs, plan.trials, store.done(), plan.only)


def plan_tasks(plan: StudyPlan, store: RunStore) -> tuple[Iterator[Task], int, int, int]:
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
                    yield Task(point_config, point.index, trial, tuple(sorted(retry[key])))
                elif key not in done:
                    yield Task(point_config, point.index, trial)

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
    return any(
        words in text
        for words in (
            "memoryerror",
            "out of memory",
            "outofmemory",
            "can't allocate memory",
            "cannot allocate memory",
        )
    )


# ---- the run ------------------------------------------------------------------------------
#: Whole trials per task when the networks run on CUDA: their networks train stacked, so
#: the GPU works on several trials' networks at once (e.g. the seed's NN1 of 8 trials).
DEFAULT_GPU_STACK_TRIALS = 8


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
    stack_trials: int | None = None,
    scheduler_timeout: float = 5.0,
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
        on Dask, per worker process (default: from the worker, see
        :func:`~ntklab.execution.dask.trial_threads`).
    scheduler : str, optional
        Address of a Dask scheduler, ``tcp://HOST:PORT``.
    dask_local : int, optional
        Start a Dask ``LocalCluster`` with this many worker processes.
    client : distributed.Client, optional
        Use this Dask client (for tests and notebooks).
    device : optional
        Device for network methods (``None``: CUDA when available).
    stack_trials : int, optional
        Local runs: whole trials of one point per task, whose networks of one architecture,
        width and schedule train in one stacked run (each on its trial's data,
        :func:`~ntklab.study.run_trials`). Default: ``DEFAULT_GPU_STACK_TRIALS`` when the
        networks run on CUDA, else 1 (on a CPU networks train fastest alone); a value > 1
        given here stacks on a CPU too. A killed run loses the tasks in flight, so up to
        this many trials per worker.
    scheduler_timeout : float
        Seconds to wait for the Dask ``scheduler`` before giving up with one line.
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
    if stack_trials is not None and (
        isinstance(stack_trials, bool) or not isinstance(stack_trials, int) or stack_trials < 1
    ):
        raise ExecutionError(f"--stack-trials must be a positive integer; got {stack_trials!r}")
    if scheduler is not None and "://" not in scheduler:
        raise ExecutionError(f"--scheduler must look like tcp://HOST:PORT; got {scheduler!r}")

    out = Path(out)
    owner = None if out.is_dir() else store_owning(out)
    if owner is not None:  # e.g. another run's results.sqlite-wal, which a mkdir would block
        raise StoreError(f"--out {out} is {owner}, not a run directory; choose another --out")
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} exists and is not a directory; choose another --out")
    if scheduler is None and client is None:  # on this machine: can its networks fit?
        check_networks_fit(plan, device)
    if scheduler is not None and client is None:
        probe_scheduler(scheduler, scheduler_timeout)  # before the run directory is made
    if is_run_dir(out) and (out / DB_NAME).stat().st_size > 0:
        RunStore.open(out).close()  # check it read-only before writing anything there
    make_run_dir(out)
    with _signals_interrupt(), RunLock(out):
        store = None
        try:
            store = open_store(plan, out)
            return _execute(
                plan, out, store, workers, threads, scheduler, dask_local, client, device,
                progress, say, stack_trials, scheduler_timeout,
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
    plan,
    out,
    store,
    workers,
    threads,
    scheduler,
    dask_local,
    client,
    device,
    progress,
    say,
    stack_trials=None,
    scheduler_timeout=5.0,
) -> RunSummary:
    started = time.monotonic()
    own_client = None
    records = None
    tasks, n_tasks, complete, n_retry = plan_tasks(plan, store)
    total = len(plan.points) * plan.trials
    summary = RunSummary(Path(out), total, complete, 0, 0, 0.0)
    progress = progress or Progress(
        total, complete, points=len(plan.points), costs=task_costs(plan, store)
    )
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
                own_client = client = connect_dask(scheduler, dask_local, timeout=scheduler_timeout)
            where = scheduler or (
                f"local cluster of {dask_local} workers" if dask_local else "client"
            )
            say(f"executing on Dask ({where})")
            records = run_dask(client, tasks, device, threads, progress)
        else:
            # each trial gets the threads of the uninterrupted run's layout (float32
            # training depends on them), however few trials are left
            layout = local_layout(
                device=device, workers=workers, threads=threads, n_tasks=n_tasks, planned=total
            )
            gpu = any(str(d).startswith("cuda") for d in layout.devices)
            per_task = stack_trials or (DEFAULT_GPU_STACK_TRIALS if gpu else 1)
            stacked = True if stack_trials is not None and stack_trials > 1 else None
            alone = local_layout(device=device, workers=workers, threads=threads, n_tasks=n_tasks)
            kept = alone.threads != layout.threads  # fewer trials left than in the plan
            say(
                f"executing locally: {layout.describe()}"
                + (" (each trial's threads as in the uninterrupted run)" if kept else "")
                + (f"; networks of up to {per_task} trials stacked" if per_task > 1 else "")
            )
            if layout.workers == 1:
                records = run_serial(
                    tasks, layout.devices[0], layout.threads, progress, per_task, stacked
                )
            else:
                records = run_pool(
                    tasks, layout.devices, layout.threads, progress, per_task, stacked
                )
        for record in records:
            store.write_trial(record)
            progress.finished(record)
            _count(summary, record)
        progress.close()
        summary.wall_time = time.monotonic() - started
        return summary
    except KeyboardInterrupt:
        progress.close()
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
