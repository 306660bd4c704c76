"""One task of a run: a whole trial, or a retry of the methods that failed in it, run by
:func:`~ntklab.study.run_trial` (:func:`run_task`); several whole trials of one point whose
networks train stacked (:func:`batches`, :func:`run_batch`, on a GPU); the trials run in this
process (:func:`run_serial`); a failed task as a record (:func:`failed_record`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..store import TrialRecord
from ..study import run_trial, run_trials
from .progress import Progress
from .threads import limit_threads

__all__ = ["Task", "batches", "run_task", "run_batch", "run_serial", "failed_record"]


def run_task(
    config: dict,
    point: int,
    trial: int,
    device,
    methods: tuple[str, ...] | None,
    on_method: Callable[[str], None] | None = None,
) -> TrialRecord:
    """:func:`run_trial`, all methods or (a retry) only ``methods``, marked on the record."""
    record = run_trial(
        config, point=point, trial=trial, device=device, on_method=on_method, methods=methods
    )
    record.methods = tuple(methods) if methods is not None else None
    return record


@dataclass(frozen=True)
class Task:
    """What one task runs: a whole trial, or the methods of a trial to retry.

    Plain fields, so that a task pickles to a worker process or a Dask worker as it is.

    Attributes
    ----------
    config : dict
        The sweep point's config (the study config with the point's values set).
    point, trial : int
        The sweep point's index and the trial's.
    methods : tuple of str or None
        The methods to retry; ``None`` runs the whole trial.
    """

    config: dict
    point: int
    trial: int
    methods: tuple[str, ...] | None = None

    def run(self, device, on_method: Callable[[str], None] | None = None) -> TrialRecord:
        """:func:`run_task` on this task's fields."""
        return run_task(self.config, self.point, self.trial, device, self.methods, on_method)

    def failed(self, exc: BaseException) -> TrialRecord:
        """:func:`failed_record` of this task."""
        return failed_record(self.point, self.trial, exc, self.methods)


def batches(tasks: Iterator[Task], size: int) -> Iterator[list[Task]]:
    """Group consecutive whole trials of one sweep point into lists of at most ``size``
    tasks (their networks then train stacked, :func:`run_batch`); a retry of failed methods
    is a batch of its own. Lazy, like ``tasks``."""
    tasks = iter(tasks)
    pending: list[Task] = []
    for task in itertools.chain(tasks, [None]):
        joins = (
            task is not None
            and task.methods is None
            and pending
            and pending[0].methods is None
            and pending[0].point == task.point
            and len(pending) < size
        )
        if pending and not joins:
            yield pending
            pending = []
        if task is not None:
            pending.append(task)


def run_batch(
    batch: list[Task],
    device,
    stacked: bool | None,
    on_method: Callable[[int, int, str], None] | None = None,
) -> list[TrialRecord]:
    """The records of a batch from :func:`batches`: one task by :func:`run_task`, several
    whole trials of one point by :func:`~ntklab.study.run_trials` (networks stacked across
    the trials when ``stacked``, default on CUDA). ``on_method(point, trial, name)``."""
    first = batch[0]
    if len(batch) == 1:
        hook = (
            None if on_method is None else (lambda name: on_method(first.point, first.trial, name))
        )
        return [first.run(device, hook)]
    hook = None if on_method is None else (lambda trial, name: on_method(first.point, trial, name))
    return run_trials(
        first.config, point=first.point, trials=[t.trial for t in batch], device=device,
        on_method=hook, stacked=stacked,
    )  # fmt: skip


def run_serial(
    tasks: Iterator[Task],
    device,
    threads: int,
    progress: Progress,
    stack_trials: int = 1,
    stacked: bool | None = None,
) -> Iterator[TrialRecord]:
    """The tasks in this process, ``stack_trials`` whole trials at a time."""
    with limit_threads(threads):  # this process, all cores by default; restored after
        for batch in batches(tasks, stack_trials):
            yield from run_batch(batch, device, stacked, progress.method)


def failed_record(
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
