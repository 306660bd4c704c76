"""Learning rates and the checks shared by :func:`~ntklab.training.train` and
:func:`~ntklab.training.train_ensemble`: :func:`auto_lr` (a stable rate from the analytic
NTK), :func:`default_record_every`, and the validation of the data, the epochs and the
learning rates the two training functions take.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_float, check_int, check_lr, check_matrix, check_vector
from ..predict import AUTO_LR_FRACTION, spectral_lr

__all__ = [
    "auto_lr",
    "auto_lr_of",
    "check_common",
    "check_lrs",
    "default_record_every",
]


def auto_lr(ntk_train, *, c: float = AUTO_LR_FRACTION, check_input: bool = True) -> float:
    r"""A stable learning rate :math:`\eta = c\, m / \lambda_{\max}(\Theta)`.

    Full-batch gradient descent on :math:`\frac1m\sum_i (f(x_i) - y_i)^2` is stable for the
    linearized network while :math:`\eta < m / \lambda_{\max}(\Theta)` (SPEC §3); the
    default :math:`c = 0.5` is half of that limit, which leaves room for the finite-width
    kernel to exceed the analytic one, and makes the slowest-converging mode's factor per
    step :math:`1 - 2c\,\lambda_{\min}/\lambda_{\max}` (the formula:
    :func:`ntklab.predict.spectral_lr`).

    Parameters
    ----------
    ntk_train : array_like (m, m)
        The analytic NTK on the training inputs, e.g. ``arch.ntk(X_train)``.
    c : float, default 0.5
        Fraction of the stability limit, ``0 < c < 1`` for a stable linearized model.
    check_input : bool, default True
        ``False`` skips the checks (:mod:`ntklab._validation`): ``ntk_train`` is then a
        finite float64 (m, m) matrix and ``c > 0``. A kernel with no positive eigenvalue
        raises ``ValueError`` either way (a property of its spectrum, not an input check).

    Returns
    -------
    float
    """
    if check_input:
        ntk_train = check_matrix(ntk_train, "ntk_train")
        if ntk_train.shape[0] != ntk_train.shape[1]:
            raise ValueError(
                f"ntk_train must be a square (m, m) kernel matrix; got shape {ntk_train.shape}"
            )
        c = check_float(c, "c", strict=True)
    K = ntk_train
    lam_max = float(np.linalg.eigvalsh(0.5 * (K + K.T))[-1])
    if not lam_max > 0:
        raise ValueError(
            f"ntk_train has no positive eigenvalue (largest {lam_max:.3g}); is it a kernel?"
        )
    return spectral_lr(K.shape[0], lam_max, c)


def default_record_every(epochs: int) -> int:
    """Epochs between recorded curve points when none is given: ``max(1, epochs // 10)``
    (eleven points or so per curve; the one default of :func:`train` and of a study's
    network methods)."""
    return max(1, int(epochs) // 10)


def check_lrs(lr, n: int, auto) -> list[float]:
    """``lr``: a number > 0, ``"auto"`` (then ``auto()``, the rate) or one number per member;
    returns a list of floats."""
    if isinstance(lr, (Sequence, np.ndarray)) and not isinstance(lr, str):
        if len(lr) != n:
            raise ValueError(f"lr has {len(lr)} entries but there are {n} seeds (one lr per seed)")
        return [check_lr(v, auto=False) for v in lr]
    lr = check_lr(lr)
    return [auto() if lr == "auto" else lr] * n


def auto_lr_of(arch, X: np.ndarray, width: int | None = None) -> float:
    """:func:`auto_lr` of ``arch``'s analytic NTK on the checked ``X`` (nothing rechecked);
    ``width``: the networks' width, for ``standard``'s width-dependent NTK."""
    return auto_lr(arch.at_width(width).kernels(X, check_input=False)[1], check_input=False)


def check_common(X, y, X_test, y_test, *, in_features, epochs, batch_size, record_every, check_every,
                  divergence_factor):  # fmt: skip
    X = check_matrix(X, "X", n_features=in_features)
    y = check_vector(y, "y", length=X.shape[0])
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together (or neither)")
    if X_test is not None:
        X_test = check_matrix(X_test, "X_test", n_features=X.shape[1])
        y_test = check_vector(y_test, "y_test", length=X_test.shape[0])
    epochs = check_int(epochs, "epochs", minimum=0)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
        if batch_size >= X.shape[0]:
            batch_size = None  # one batch per epoch is full-batch gradient descent
    if record_every is None:
        record_every = default_record_every(epochs)
    record_every = check_int(record_every, "record_every")
    check_every = check_int(check_every, "check_every")
    divergence_factor = check_float(divergence_factor, "divergence_factor", minimum=1.0)
    return X, y, X_test, y_test, epochs, batch_size, record_every, check_every, divergence_factor
