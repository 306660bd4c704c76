r"""What a trial costs, roughly, for the progress bar's ETA (:class:`~.progress.Progress`).

Trials of a study need not cost the same: in ``seed-quick`` the networks (177 000 SGD
steps through a 10 000-wide layer) run in the first 12 of 50 trials and the other 38 trials
are kernels only. An ETA that takes every trial as the mean of those finished so far says
"31m" for a run that ends in 4. Here a trial's cost is the sum of its methods' estimated
floating-point work. The ETA (:class:`~.progress.Progress`) takes each trial left to last
as long as the finished trials of the same cost (the same methods) did, and a trial of a
cost not seen yet its cost at the rate (seconds per unit) seen so far; so the model only
has to rank the kinds of trial until one of each kind has finished.

The estimates are coarse (constant factors and caches ignored), which is enough where the
trials differ by orders of magnitude:

* a network: :math:`6 \times \text{steps} \times b \times P` for its forward and backward
  passes, :math:`P = d w + (L-1) w^2 + w` weights, :math:`b` rows a step (the batch, or
  every fitted row), steps = epochs × ⌈m / b⌉; plus a fixed cost per step (Python and
  kernel launches, :data:`STEP_OVERHEAD`);
* a kernel method: :math:`L n^2` for the kernel of the n rows and :math:`m^3 / 3` for its
  Cholesky factor (an ``ntk_time`` kernel's eigendecomposition, :math:`10\, m^3`), plus
  :data:`METHOD_OVERHEAD`;
* every trial: :data:`TRIAL_OVERHEAD` (data, store, process).

The overheads are set from ``seed-quick`` on 2 CPU cores: its kernel methods take about
0.5 s each at n = 1000 whatever their flop count, its network trials about 10 times a
kernel-only trial.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection, Iterable, Sequence

from ..config.schema import MethodConfig, StudyConfig
from ..study import methods_due

__all__ = [
    "METHOD_OVERHEAD",
    "STEP_OVERHEAD",
    "TRIAL_OVERHEAD",
    "TrialCosts",
    "method_cost",
    "trial_cost",
]

#: Floating-point work equivalent to the fixed cost of one SGD step (Python, kernel
#: launches: about 20 µs at a few GFLOP/s).
STEP_OVERHEAD = 1e5
#: ... of a kernel method beyond its flops (its kernel matrices built, solves, metrics:
#: about 0.5 s a method in seed-quick, at tens of GFLOP/s).
METHOD_OVERHEAD = 2e10
#: ... of a trial (data, store, messages).
TRIAL_OVERHEAD = 1e10


def _rows(config: StudyConfig) -> tuple[int, int, int]:
    """``(n, n_train, d)`` of the data, with the simulated data's defaults where unset."""
    data = config.data
    n = data.n or 1000
    if data.n_train is not None:
        m = data.n_train
    elif data.test_fraction is not None:
        m = int(round(n * (1 - data.test_fraction)))
    else:
        m = int(0.8 * n)
    return n, m, data.d or 15


def method_cost(method: MethodConfig, n: int, m: int, d: int) -> float:
    """Estimated floating-point work of one method in one trial on ``n`` rows, ``m`` of them
    for training, of ``d`` features (module docstring)."""
    depth = method.depth or 1
    fitted = m * (1 - (method.holdout_fraction or 0.0))
    if method.kind == "network":
        w = method.width or 256
        params = d * w + (depth - 1) * w * w + w
        rows = min(method.batch_size or fitted, fitted) or 1
        steps = (method.epochs or 1) * math.ceil(fitted / rows)
        work = steps * (6 * rows * params + STEP_OVERHEAD)
        if method.equivalence:  # the empirical NTK at the start and the end
            work += 2 * n * n * params
        return float(work)
    solve = 10 * fitted**3 if method.kind == "ntk_time" else fitted**3 / 3
    return float(depth * n * n + solve + METHOD_OVERHEAD)


def trial_cost(config: StudyConfig, trial: int, only: Collection[str] | None = None) -> float:
    """Estimated work of trial ``trial``: the methods it runs (a method with ``trials = k``
    runs in trials 0..k-1 only; ``only`` restricts them) plus :data:`TRIAL_OVERHEAD`."""
    n, m, d = _rows(config)
    return TRIAL_OVERHEAD + sum(method_cost(x, n, m, d) for x in methods_due(config, trial, only))


class TrialCosts:
    """The cost of every trial of a plan not yet done, without a value per trial: a trial's
    cost changes only where a method's ``trials`` cap ends, so each sweep point is a few
    segments of equal cost (a study of a billion trials costs a few numbers).

    Parameters
    ----------
    configs : sequence of StudyConfig
        Each sweep point's config, in point order.
    trials : int
        Trials per point.
    done : iterable of (point, trial)
        Trials already done (not counted in :attr:`total`).
    only : collection of str, optional
        The methods run (``--only``).

    Attributes
    ----------
    total : float
        The cost of the trials not done.
    """

    def __init__(
        self,
        configs: Sequence[StudyConfig],
        trials: int,
        done: Iterable[tuple[int, int]] = (),
        only: Collection[str] | None = None,
    ):
        self._starts: list[list[int]] = []
        self._costs: list[list[float]] = []
        for config in configs:
            caps = {m.trials for m in config.methods if m.trials is not None and m.trials < trials}
            starts = sorted({0} | caps)
            self._starts.append(starts)
            self._costs.append([trial_cost(config, t, only) for t in starts])
        self._left: dict[float, int] = {}
        for starts, costs in zip(self._starts, self._costs, strict=True):
            ends = [*starts[1:], trials]
            for a, b, c in zip(starts, ends, costs, strict=True):
                self._left[c] = self._left.get(c, 0) + (b - a)
        for p, t in done:
            if 0 <= p < len(self._starts) and 0 <= t < trials:
                self._left[self(p, t)] -= 1
        self.total = sum(c * n for c, n in self._left.items())

    def remaining(self) -> dict[float, int]:
        """``{cost: number of trials of that cost not done}``."""
        return dict(self._left)

    def __call__(self, point: int, trial: int) -> float:
        """The cost of trial ``trial`` of point ``point``."""
        if not 0 <= point < len(self._starts):
            return TRIAL_OVERHEAD
        starts = self._starts[point]
        return self._costs[point][bisect.bisect_right(starts, trial) - 1]
