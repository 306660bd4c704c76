r"""What a trial costs, roughly, for the progress bar's ETA (:class:`~.progress.Progress`).

Trials of a study need not cost the same: in ``seed-quick`` the networks (177 000 SGD
steps through a 10 000-wide layer) run in the first 12 of 50 trials and the other 38 trials
are kernels only. An ETA that takes every trial as the mean of those finished so far says
"31m" for a run that ends in 4. Here a trial's cost is the sum of its methods' estimated
floating-point work, and the ETA is the elapsed time per unit of finished work times the
work left.

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

import math
from collections.abc import Collection

from ..config.schema import MethodConfig, StudyConfig
from ..study import methods_due

__all__ = ["METHOD_OVERHEAD", "STEP_OVERHEAD", "TRIAL_OVERHEAD", "method_cost", "trial_cost"]

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
