"""Running trials: :func:`run_trials` makes each trial's data, trains the batch's networks
stacked where they can be (:mod:`.stacking`), runs every due method of every trial
(:func:`~.methods.run_method`) and returns one :class:`~ntklab.store.TrialRecord` per trial,
never raising; :func:`run_trial` is one trial alone.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ..config import StudyConfig
from ..store import GENERATOR_METHOD, TrialRecord
from .context import make_data, methods_due, trial_seed
from .methods import run_method
from .stacking import train_networks

__all__ = ["run_trial", "run_trials"]


def run_trial(
    config: StudyConfig | dict[str, Any],
    *,
    point: int = 0,
    trial: int,
    device=None,
    on_method: Callable[[str], None] | None = None,
    methods: Collection[str] | None = None,
    stacked: bool | None = None,
) -> TrialRecord:
    """Run trial ``trial`` of one sweep point: data, then every method; never raises.

    Parameters
    ----------
    config : StudyConfig or dict
        The (resolved) config of the sweep point.
    point, trial : int
        Sweep point index (only stored) and trial index (selects the randomness).
    device : str or torch.device, optional
        For network methods; ``None``: CUDA when available (``ntklab.networks.resolve_device``).
    on_method : callable, optional
        Called with each method's name before it runs (progress display).
    methods : collection of str, optional
        Run only these methods (default: all). Either way a method whose ``trials`` cap is
        at most ``trial`` is not run (:func:`methods_due`).
    stacked : bool, optional
        Train the trial's networks of one architecture, width and schedule stacked
        (:func:`train_networks`); default: on CUDA only. ``True`` forces it on a CPU.

    Returns
    -------
    TrialRecord
        ``status="done"`` with one row per (method, metric[, step]) and, when the data
        generator needed jitter, a ``generator_jitter`` row of method
        :data:`~ntklab.store.GENERATOR_METHOD`; a method that raises
        adds an entry to ``errors`` and the trial goes on. If the data cannot be made the
        record has ``status="failed"`` and the error (retried on resume).
    """
    on_trial_method = None if on_method is None else (lambda _trial, name: on_method(name))
    (record,) = run_trials(
        config, point=point, trials=[trial], device=device, on_method=on_trial_method,
        methods=methods, stacked=stacked,
    )  # fmt: skip
    return record


def run_trials(
    config: StudyConfig | dict[str, Any],
    *,
    point: int = 0,
    trials: Sequence[int],
    device=None,
    on_method: Callable[[int, str], None] | None = None,
    methods: Collection[str] | None = None,
    stacked: bool | None = None,
) -> list[TrialRecord]:
    """Run several trials of one sweep point, their networks trained together; never raises.

    Each trial's record is the one :func:`run_trial` gives (equal up to float round-off
    where networks were trained stacked), but the network methods of all ``trials`` that
    share an architecture, width and schedule are trained in one stacked run, each member
    on its own trial's data (:func:`train_networks`; default on CUDA only, ``stacked=True``
    forces it on a CPU). This is how a GPU worker keeps its device busy with the seed's
    NN1 of several trials at once. ``on_method(trial, name)`` is called before each method.
    """
    if not isinstance(config, StudyConfig):
        config = StudyConfig.model_validate(config)
    study_seed = config.study.seed
    started = []  # per trial: its record, context (None if its data failed), due methods
    for trial in trials:
        ss = trial_seed(study_seed, trial)
        record = TrialRecord(
            point=point,
            trial=trial,
            seed=f"SeedSequence(entropy={ss.entropy}, spawn_key={tuple(ss.spawn_key)})",
        )
        start = time.perf_counter()
        try:
            ctx, jitter = make_data(config, trial)
            if jitter:  # 0 for every preset's data; stored only when not
                record.add(GENERATOR_METHOD, "generator_jitter", jitter)
            started.append((record, ctx, methods_due(config, trial, methods)))
        except Exception as exc:
            record.status = "failed"
            record.error = _one_line(exc) + " | " + _where(exc)
            started.append((record, None, []))
        record.wall_time = time.perf_counter() - start
    jobs = [(r.trial, ctx, m) for r, ctx, due in started if ctx is not None for m in due]
    start = time.perf_counter()
    trained = train_networks(jobs, study_seed=study_seed, device=device, stacked=stacked)
    together = time.perf_counter() - start  # charged to the trials by their networks' shares
    shares = sum(r.wall_time for r in trained.values()) or 1.0
    for record, ctx, due in started:
        if ctx is None:
            continue
        start = time.perf_counter()
        for method in due:
            if on_method is not None:
                on_method(record.trial, method.name)
            try:
                result = trained.pop((record.trial, method.name), None)
                if result is not None:  # trained stacked: its share of the stacked run
                    record.wall_time += together * result.wall_time / shares
                run_method(
                    method, ctx, record, study_seed=study_seed, trial=record.trial,
                    device=device, trained=result,
                )  # fmt: skip
            except Exception as exc:  # a failing method must not lose the trial
                record.rows = [r for r in record.rows if r[0] != method.name]
                record.errors.append((method.name, _one_line(exc)))
        record.wall_time += time.perf_counter() - start
        ctx.cache.clear()  # this trial's n x n kernels: the batch's next trial needs room
        ctx.spectra.clear()
    return [record for record, _, _ in started]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"
