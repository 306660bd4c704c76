r"""The error measures every part of ntklab reports, defined once.

.. math::

    \operatorname{RMS}(a) = \sqrt{\tfrac1n \textstyle\sum_i a_i^2}, \qquad
    \operatorname{RMSE}(\hat y, y) = \operatorname{RMS}(\hat y - y),

taken over the last axis (so a stack of predictions, one row per recorded epoch, gives one
value per row). Computed in float64. :data:`METRICS` names every value a run stores (the
``metric`` column of its ``results`` table) and says what it measures.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "rms", "rmse"]

#: Metric names used in ``results.metric`` (a report may rely on these).
METRICS = {
    "rmse": "test RMSE of the method",
    "train_rmse": "training RMSE",
    "jitter": "diagonal jitter needed by the Cholesky solve (kernel methods; 0 if none)",
    "generator_jitter": "diagonal jitter needed by the Cholesky factor of the data generator's "
    "kernel (method GENERATOR_METHOD; stored only when not 0)",
    "fit_seconds": "wall time of fitting + predicting the method",
    "diverged": "1.0 if the network's training diverged, else 0.0",
    "diverged_epoch": "epoch at which training diverged",
    "lr": "learning rate actually used (after lr='auto')",
    "nn_lin_rms": "RMS(f_NN - f_lin) on test points, f_lin = NTK prediction at the same T and f0",
    "nn_lin_rel": "nn_lin_rms / RMS(f_lin)",
    "nn_mean_rms": "RMS(f_NN - NTK mean prediction at the same T)",
    "nn_mean_rel": "nn_mean_rms / RMS(NTK mean prediction)",
    "kernel_drift": "||Theta_T - Theta_0||_F / ||Theta_0||_F (empirical NTK)",
    "finite_width_error": "||Theta_0 - Theta||_F / ||Theta||_F (empirical vs analytic NTK)",
    "ntk_same_t_rmse": "test RMSE of the NTK prediction at the network's training time",
    "ntk_inf_rmse": "test RMSE of the NTK prediction at T = infinity",
    "ntk_mean_same_t_rmse": "test RMSE of the NTK mean prediction (no f0) at the network's training time",
    "ntk_mean_inf_rmse": "test RMSE of the NTK mean prediction at T = infinity (= kernel regression)",
    "nn_elin_rms": "RMS(f_NN - f_elin), f_elin = linearization with the empirical initial NTK",
    "nn_elin_rel": "nn_elin_rms / RMS(f_elin)",
    "curve_train_loss": "training loss at epoch `step`",
    "curve_test_rmse": "network test RMSE at epoch `step`",
    "curve_ntk_test_rmse": "NTK (same f0) test RMSE at epoch `step`",
    "lambda_max_0": "top eigenvalue of the network's empirical NTK on its fitted rows at init",
    "lambda_max_T": "the same at the end of training (NaN if it diverged)",
    "lr_multiple": "lr / eta_crit, eta_crit = m / lambda_max_0 (the critical rate)",
    "lazy_scale": "alpha of a lazy-scaled network alpha (f - f0) (its config's lazy_scale)",
    "curve_lambda_max": "top eigenvalue of the empirical NTK on the fitted rows at epoch `step`",
    # tuned methods on real data (ntklab.tuned); each chosen hyperparameter is `hp_<name>`
    "error": "test error of a tuned method: RMSE, or the misclassification rate for classes",
    "accuracy": "test accuracy (classification)",
    "hp_*": "a hyperparameter the method chose on its training rows (e.g. hp_sigma_w, hp_ridge)",
}


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
