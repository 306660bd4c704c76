"""Input checks that turn bad input into a clear ``ValueError`` naming the argument.

Every public entry point of ntklab validates its arrays here, so that a user sees
``ValueError: X must be a 2-D array (n_samples, n_features); got shape (5,)`` rather
than a traceback from inside numpy or torch.

Validate once, at the boundary
------------------------------
The convention every module follows:

1. **The boundary checks.** Public entry points check each argument once, with the
   functions of this module, then compute on the checked float64 arrays.
   They are: the names that ``ntklab`` re-exports, the functions in a module's ``__all__``,
   the public methods of public classes (``Architecture.kernels``,
   ``PublishedKernel.__call__``, the scikit-learn estimators' and kernels' ``fit``,
   ``predict``, ``__call__``, ``diag``), the config (:mod:`ntklab.config`) and the CLI.
2. **One public name per function, and** ``check_input`` **for trusted data.** A public
   function that ntklab itself also calls on arrays it made or checked takes a keyword-only
   ``check_input: bool = True`` (scikit-learn's name for the same switch, e.g.
   ``DecisionTreeRegressor.fit(..., check_input=False)``). ``check_input=False`` skips the
   function's checks of its arguments and converts nothing; the caller guarantees what the
   function's docstring states under ``check_input`` (finite float64 arrays of matching
   shapes, ``Z=None`` for the symmetric kernel, numbers in range). The result is the same as
   with the checks, bit for bit. The functions that take it:
   :meth:`ntklab.Architecture.kernels`, :func:`ntklab.kernels.laplacian`,
   :func:`ntklab.kernels.rbf`, :func:`ntklab.published.published_kernels`,
   :func:`ntklab.predict.gradient_descent_mse`, :func:`ntklab.training.train_ensemble`,
   :func:`ntklab.training.auto_lr`, :func:`ntklab.networks.predict_numpy`,
   :meth:`ntklab.TrainResult.predict` and :meth:`~ntklab.TrainResult.initial_predict`,
   :func:`ntklab.empirical.empirical_ntk`, :func:`ntklab.equivalence.equivalence_metrics` and
   :meth:`ntklab.regimes.EmpiricalKernel.kernels`. There is no unchecked public twin, and no
   private name is imported across modules (``tests/test_layout.py``). Functions that only
   ever receive arrays made inside ntklab (:mod:`ntklab.linalg`,
   :func:`ntklab.predict.kernel_regression`) check nothing and say so.
3. **Internal callers pass** ``check_input=False``. A trial of a study makes its own data
   from the validated config (:mod:`ntklab.data`), so it computes kernels, predictions,
   trained networks and their equivalence measures with ``check_input=False`` and checks no
   array at all; a public function that has checked its arguments (e.g.
   :func:`ntklab.equivalence_metrics`) passes ``check_input=False`` to the functions it
   calls on the same arrays.

The rule is about arrays. The scalar checks (:func:`check_int`, :func:`check_float`) cost
nothing, and a public function without ``check_input`` keeps them when ntklab itself calls
it (e.g. the trial's ``data.sphere(n, d, rng)``). The checks of a user's own callable's
output (the kernel of :class:`ntklab.KernelRegressor`) and the diagnostics of a failed
factorization (:func:`ntklab.linalg.cholesky_jitter`) are not input checks and stay where
they are. ``tests/test_validation.py`` checks both paths: bad input gives one clear line,
and ``check_input=False`` on valid input gives the checked path's results.
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
