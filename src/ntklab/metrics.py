r"""The error measures every part of ntklab reports, defined once.

.. math::

    \operatorname{RMS}(a) = \sqrt{\tfrac1n \textstyle\sum_i a_i^2}, \qquad
    \operatorname{RMSE}(\hat y, y) = \operatorname{RMS}(\hat y - y),

taken over the last axis (so a stack of predictions, one row per recorded epoch, gives one
value per row). Computed in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rms", "rmse"]


def rms(a) -> float | np.ndarray:
    """Root mean square of ``a`` over its last axis (a float for a 1-D ``a``, else an array)."""
    out = np.sqrt(np.mean(np.square(np.asarray(a, dtype=np.float64)), axis=-1))
    return float(out) if out.ndim == 0 else out


def rmse(pred, target) -> float | np.ndarray:
    """Root mean squared error of ``pred`` against ``target`` over the last axis.

    Parameters
    ----------
    pred : array_like (n,) or (S, n)
        Predictions (one row per curve point for a 2-D array).
    target : array_like (n,)
        The true values (or a reference prediction).

    Returns
    -------
    float, or ndarray (S,) for a 2-D ``pred``
    """
    return rms(np.asarray(pred, dtype=np.float64) - target)
