"""One task of a run: a whole trial, or a retry of the methods that failed in it, run by
:func:`~ntklab.study.run_trial` (:func:`run_task`); the trials run in this process
(:func:`run_serial`); a failed task as a record (:func:`failed_record`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..store import TrialRecord
from ..study import run_trial
from .progress import Progress
from .threads import limit_threads

__all__ = ["Task", "run_task", "run_serial", "failed_record"]


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


#: (point config, point, trial, methods to retry or None for the whole trial)
Task = tuple[dict, int, int, "tuple[str, ...] | None"]


def run_serial(
    tasks: Iterator[Task], device, threads: int, progress: Progress
) -> Iterator[TrialRecord]:
    with limit_threads(threads):  # this process, all cores by default; restored after
        for config, point, trial, methods in tasks:
            yield run_task(
                config,
                point,
                trial,
                device,
                methods,
                on_method=lambda name, p=point, t=trial: progress.method(p, t, name),
            )


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
