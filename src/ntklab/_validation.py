"""Input checks that turn bad input into a clear ``ValueError`` naming the argument.

Every public entry point of ntklab validates its arrays here, so that a user sees
``ValueError: X must be a 2-D array (n_samples, n_features); got shape (5,)`` rather
than a traceback from inside numpy or torch.

Validate once, at the boundary
------------------------------
The convention every module follows:

1. **The boundary checks.** Public entry points check each argument once, with the
   functions of this module, then hand the checked float64 arrays to their implementation.
   They are: the names that ``ntklab`` re-exports, the functions in a module's ``__all__``
   (without the suffix below), the public methods of public classes (``Architecture.kernels``,
   ``PublishedKernel.__call__``, the scikit-learn estimators' and kernels' ``fit``,
   ``predict``, ``__call__``, ``diag``), the config (:mod:`ntklab.config`) and the CLI.
2. **Implementations trust their input and check nothing.** An implementation used only in
   its own module is private (``_name``). One that another module calls is a public name
   ending in ``_unchecked`` (``Architecture.kernels_unchecked``,
   :func:`ntklab.kernels.laplacian_unchecked`, :func:`ntklab.kernels.rbf_unchecked`,
   :func:`ntklab.published.published_kernels_unchecked`,
   :func:`ntklab.predict.gradient_descent_mse_unchecked`,
   :func:`ntklab.training.train_ensemble_unchecked`, :func:`ntklab.training.auto_lr_unchecked`,
   :func:`ntklab.networks.predict_numpy_unchecked`, ``TrainResult.predict_unchecked`` and
   ``initial_predict_unchecked``, :func:`ntklab.empirical.empirical_ntk_unchecked`,
   :func:`ntklab.equivalence.equivalence_metrics_unchecked`) whose docstring states what it
   trusts (finite float64 arrays of matching shapes). No private name is imported across
   modules. Functions that only ever receive arrays made inside ntklab and have no checked
   twin (:mod:`ntklab.linalg`, :func:`ntklab.predict.kernel_regression`) check nothing
   either and say so.
3. **Internal callers use the unchecked versions.** A trial of a study makes its own data
   from the validated config (:mod:`ntklab.data`), so it computes kernels, predictions,
   trained networks and their equivalence measures with the ``_unchecked`` versions and
   checks no array at all; a public function that has checked its arguments
   (e.g. :func:`ntklab.equivalence_metrics`) calls the ``_unchecked`` versions too, not
   another public function on the same arrays (where an ``_unchecked`` version exists).

The rule is about arrays. The scalar checks (:func:`check_int`, :func:`check_float`) cost
nothing, and a public function keeps them when ntklab itself calls it (e.g. the trial's
``data.sphere(n, d, rng)``). The checks of a user's own callable's output (the kernel of
:class:`ntklab.KernelRegressor`) and the diagnostics of a failed factorization
(:func:`ntklab.linalg.cholesky_jitter`) are not input checks and stay where they are.

Modules import these functions by name (``from ._validation import check_matrix``);
``tests/test_validation.py`` counts the calls by patching every ``ntklab`` module's binding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_matrix(X: Any, name: str = "X", *, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a finite float64 array of shape (n_samples, n_features).

    Parameters
    ----------
    X : array_like or torch.Tensor
        The input.
    name : str
        The argument's name, used in error messages.
    n_features : int, optional
        If given, the required number of columns (e.g. that of the other argument).
    """
    if X is None:
        raise ValueError(f"{name} is required; got None")
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch.Tensor without importing torch
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array; could not convert it ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features); got shape {arr.shape}. "
            "Use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} must have at least one sample and one feature; got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
            "remove or impute them first"
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features but {n_features} were expected "
            "(X and Z must have the same number of columns)"
        )
    return arr


def check_pair(X: Any, Z: Any = None, *, names: tuple[str, str] = ("X", "Z")):
    """Validate ``X`` and optional ``Z`` (same feature count). Returns ``(X, Z, symmetric)``."""
    X = check_matrix(X, names[0])
    if Z is None:
        return X, X, True
    Z = check_matrix(Z, names[1], n_features=X.shape[1])
    return X, Z, False


def check_vector(y: Any, name: str = "y", *, length: int | None = None) -> np.ndarray:
    """Return ``y`` as a finite float64 vector; (n, 1) column vectors are flattened."""
    if y is None:
        raise ValueError(f"{name} is required; got None")
    if hasattr(y, "detach") and hasattr(y, "cpu"):
        y = y.detach().cpu().numpy()
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array; could not convert it ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (n_samples,); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first")
    if length is not None and arr.shape[0] != length:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but {length} were expected (one per row of X)"
        )
    return arr


def check_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_float(value: Any, name: str, *, minimum: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a finite float >= ``minimum`` (> if ``strict``), else raise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number; got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if out < minimum or (strict and out == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum}; got {value!r}")
    return out


def check_lr(value: Any, name: str = "lr", *, auto: bool = True) -> float | str:
    """Return a learning rate: ``"auto"`` (if ``auto``) or a finite float > 0, else raise.

    The one learning-rate check of ntklab (the config and :func:`ntklab.train` both use it).
    """
    if auto and isinstance(value, str) and value == "auto":
        return "auto"
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not (number and math.isfinite(value) and value > 0):
        expected = "a positive number or 'auto'" if auto else "a positive number"
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return float(value)
