r"""Methods tuned as their field tunes them, for real data: what a study's tuned kinds run.

Every method sees the same training and test rows (the fold of a trial) and tunes only on
its training rows:

* ``gp_ntk``, ``gp_nngp``: a Gaussian process with covariance
  :math:`c\,k_\theta + \sigma_n^2 I` (:class:`ntklab.NTKKernel` or :class:`ntklab.NNGPKernel`
  times scikit-learn's ``ConstantKernel``, plus a ``WhiteKernel``); σ_w, β, the amplitude
  :math:`c` and the noise :math:`\sigma_n^2` maximize the log marginal likelihood (analytic
  gradients, :mod:`ntklab.kernel_gradients`), and with ``max_depth`` the depth in
  ``depth`` .. ``max_depth`` of the highest marginal likelihood is kept;
* ``gp_rbf``, ``gp_matern``: the same with an RBF or Matérn (ν = 5/2) kernel and its
  length scale;
* ``ntk_cv``, ``nngp_cv``, ``rbf_cv``, ``laplacian_cv``: kernel ridge regression with the
  kernel's fixed constants and the ridge :math:`\lambda` of the smallest exact leave-one-out
  error (:func:`loo_ridge`) on a grid relative to the mean diagonal of the kernel;
* ``random_forest``, ``gradient_boosting``: scikit-learn's, at their default settings, on the
  standardized features not projected onto the sphere (``Dataset.X_features``; the
  projection would mix every feature into each coordinate a tree splits on);
* ``network_cv``: networks of the method's architecture on the training rows minus a
  validation part, one per point of a width × learning-rate grid (the rate a multiple of
  ``lr = "auto"``), stopped early at the recorded epoch of the smallest validation error;
  the grid point and epoch are chosen on validation only.

Classification (``Dataset.classes`` > 0) regresses the one-hot targets, as Arora et al.
(2020) did with the NTK, and predicts the class of the largest output (forests and boosting
use their classifiers). Every method records ``error`` (test RMSE, or the misclassification
rate), ``rmse`` or ``accuracy``, ``fit_seconds`` and each chosen hyperparameter as
``hp_<name>``.

References
----------
Arora, S., Du, S. S., Li, Z., Salakhutdinov, R., Wang, R. and Yu, D. (2020). Harnessing the
power of infinitely wide deep nets on small-data tasks. ICLR.
Rasmussen, C. E. and Williams, C. K. I. (2006). Gaussian processes for machine learning,
§5.4 (marginal likelihood), §5.4.2 (leave-one-out).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from .config import KernelSpec, MethodConfig
from .config.kinds import FEATURE_KINDS
from .config.schema import TUNED_KINDS
from .data import Dataset, check_target
from .metrics import rmse
from .predict import kernel_regression
from .store import TrialRecord

__all__ = ["TUNED_KINDS", "RIDGE_GRID", "loo_ridge", "one_hot", "run_tuned", "fit_predict"]

#: Ridge candidates λ / mean(diag K) for the ``*_cv`` kinds.
RIDGE_GRID = np.logspace(-6, 3, 19)


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """(n, classes) indicator matrix of integer-valued ``labels``."""
    out = np.zeros((labels.shape[0], classes))
    out[np.arange(labels.shape[0]), labels.astype(int)] = 1.0
    return out


def loo_ridge(
    K: np.ndarray, Y: np.ndarray, grid: np.ndarray = RIDGE_GRID
) -> tuple[float, np.ndarray]:
    r"""The ridge of the smallest exact leave-one-out squared error, and the errors.

    With :math:`K = U \operatorname{diag}(w) U^\top` and the hat matrix
    :math:`H_\lambda = K (K + \lambda I)^{-1}`, the leave-one-out residuals are
    :math:`(y_i - (H_\lambda y)_i) / (1 - (H_\lambda)_{ii})` (Rasmussen & Williams 2006,
    eq. 5.12), so one eigendecomposition gives every :math:`\lambda` of the grid.

    Parameters
    ----------
    K : ndarray (m, m)
        Training kernel, symmetric PSD, float64.
    Y : ndarray (m, k)
    grid : ndarray
        Candidates :math:`\lambda / \overline{\operatorname{diag} K}`.

    Returns
    -------
    ridge : float
        The chosen :math:`\lambda` (absolute).
    errors : ndarray
        Mean squared leave-one-out error per grid value.
    """
    w, U = np.linalg.eigh(K)
    w = np.maximum(w, 0.0)
    UtY = U.T @ Y
    scale = float(np.mean(np.diag(K)))
    errors = np.empty(len(grid))
    for i, rel in enumerate(grid):
        lam = rel * scale
        resid = U @ ((lam / (w + lam))[:, None] * UtY)
        keep = (U * U) @ (lam / (w + lam))  # 1 - H_ii
        errors[i] = np.mean((resid / keep[:, None]) ** 2)
    return float(grid[int(np.argmin(errors))] * scale), errors


def _scores(record: TrialRecord, name: str, pred: np.ndarray, y_test: np.ndarray, classes: int):
    if classes:
        labels = np.argmax(pred, axis=1) if pred.ndim == 2 else pred
        acc = float(np.mean(labels == y_test))
        record.add(name, "accuracy", acc)
        record.add(name, "error", 1.0 - acc)
    else:
        value = rmse(pred.reshape(-1), y_test)
        record.add(name, "rmse", value)
        record.add(name, "error", value)


def _gp(method: MethodConfig, X, Y, seed: int) -> tuple[np.ndarray, dict]:
    """Fit the GP of a ``gp_*`` method; return its predictor and learned hyperparameters."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

    from .sklearn_kernels import NNGPKernel, NTKKernel

    if method.kind in ("gp_ntk", "gp_nngp"):
        cls = NTKKernel if method.kind == "gp_ntk" else NNGPKernel
        depths = range(method.depth, (method.max_depth or method.depth) + 1)
        bases = [
            (depth, cls(depth, method.parameterization, method.sigma_w, method.sigma_b,
                        method.sigma_w1))
            for depth in depths
        ]  # fmt: skip
    elif method.kind == "gp_rbf":
        bases = [(None, RBF(method.length_scale, (1e-2, 1e2)))]
    else:
        bases = [(None, Matern(method.length_scale, (1e-2, 1e2), nu=2.5))]
    best = None
    for depth, base in bases:
        kernel = ConstantKernel(1.0, (1e-5, 1e5)) * base + WhiteKernel(0.1, (1e-6, 1e1))
        gp = GaussianProcessRegressor(kernel, random_state=seed % 2**31)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X, Y)
        lml = float(gp.log_marginal_likelihood_value_)
        if best is None or lml > best[0]:
            best = (lml, depth, gp)
    lml, depth, gp = best
    params = gp.kernel_.get_params()
    hp = {"amplitude": params["k1__k1__constant_value"], "noise": params["k2__noise_level"]}
    fitted = params["k1__k2"]
    if depth is not None:
        arch = fitted.architecture
        hp.update(depth=depth, sigma_w=arch.sigma_w, sigma_b=arch.sigma_b)
        if fitted.sigma_w1 is not None:
            hp["sigma_w1"] = arch.sigma_w1
    else:
        hp["length_scale"] = fitted.length_scale
    hp["log_marginal_likelihood"] = lml
    return gp, hp


def _ridge_cv(method: MethodConfig, kernel, data: Dataset, Y: np.ndarray):
    kind = method.kind[: -len("_cv")]
    fields = {"kind": kind}
    if kind in ("ntk", "nngp"):
        for key in ("depth", "parameterization", "sigma_w", "sigma_b", "sigma_w1"):
            if getattr(method, key) is not None:
                fields[key] = getattr(method, key)
    else:
        fields["length_scale"] = method.length_scale
    K = kernel(KernelSpec(**fields))  # in a study: shared with the trial's other methods
    fit = data.train
    K_train, K_test = K[np.ix_(fit, fit)], K[np.ix_(data.test, fit)]
    ridge, _ = loo_ridge(K_train, Y)
    pred, _ = kernel_regression(K_train, K_test, Y, ridge)
    return pred, {"ridge": ridge, "ridge_relative": ridge / float(np.mean(np.diag(K_train)))}


def _trees(method: MethodConfig, X, y, X_test, classes: int, seed: int):
    from sklearn import ensemble

    kind = "RandomForest" if method.kind == "random_forest" else "GradientBoosting"
    model = getattr(ensemble, kind + ("Classifier" if classes else "Regressor"))
    opts = {"n_jobs": 1} if method.kind == "random_forest" else {}
    fitted = model(random_state=seed % 2**31, **opts).fit(X, y)
    return fitted.predict(X_test), {"n_estimators": float(fitted.n_estimators)}


def _predict(method: MethodConfig, data: Dataset, kernel, *, seed: int, device=None):
    """``(predictions (n_test, outputs), hyperparameters)`` of ``method`` fitted on
    ``data.train``; ``kernel(spec)`` gives a kernel matrix on all rows of ``data``."""
    fit = data.train
    X, X_test = data.X[fit], data.X_test
    Y = one_hot(data.y[fit], data.classes) if data.classes else data.y[fit][:, None]
    mean = Y.mean(axis=0)
    if method.kind in FEATURE_KINDS:
        features = data.X if data.X_features is None else data.X_features
        pred, hp = _trees(
            method, features[fit], data.y[fit], features[data.test], data.classes, seed
        )
        return (one_hot(pred, data.classes) if data.classes else pred[:, None]), hp
    if method.kind.startswith("gp_"):
        gp, hp = _gp(method, X, Y - mean, seed)
        return gp.predict(X_test).reshape(len(X_test), -1) + mean, hp
    if method.kind == "network_cv":
        from .tuned_network import network_cv

        pred, hp = network_cv(method, X, Y - mean, X_test, seed=seed, device=device)
        return pred + mean, hp
    pred, hp = _ridge_cv(method, kernel, data, Y - mean)
    return pred + mean, hp


def run_tuned(method: MethodConfig, ctx, record: TrialRecord, *, seed: int, device=None) -> None:
    """Fit ``method`` (a kind of :data:`TUNED_KINDS`) on the trial's training rows of ``ctx``
    (a :class:`ntklab.study.TrialContext`) and record its test scores and hyperparameters."""
    start = time.perf_counter()
    pred, hp = _predict(method, ctx.data, ctx.kernel, seed=seed, device=device)
    _scores(record, method.name, pred, ctx.data.y_test, ctx.data.classes)
    for key, value in hp.items():
        record.add(method.name, f"hp_{key}", float(value))
    record.add(method.name, "fit_seconds", time.perf_counter() - start)


def _kernel_on(X: np.ndarray):
    """``kernel(spec)`` on the rows ``X`` (for :func:`fit_predict`, outside a study)."""
    from .kernels import laplacian, rbf

    def kernel(spec: KernelSpec) -> np.ndarray:
        if spec.kind in ("ntk", "nngp"):
            return spec.architecture().kernels(X, check_input=False)[spec.kind == "ntk"]
        fn = laplacian if spec.kind == "laplacian" else rbf
        return fn(X, length_scale=spec.length_scale, check_input=False)

    return kernel


def fit_predict(
    method: MethodConfig, X_train, y_train, X_test, *, classes: int = 0, seed: int = 0, device=None
):
    """Fit one tuned method on ``(X_train, y_train)`` and predict ``X_test``, outside a study.

    Returns ``(prediction, hyperparameters)``: predicted values, or class labels when
    ``classes`` > 0 (``y_train`` then holds labels 0 .. classes - 1). Bad input gets one
    line: a target with NaN, mismatched rows, too few rows.
    """
    from ._validation import check_pair

    y_train = check_target(y_train, "y_train")
    X_train, X_test, _ = check_pair(X_train, X_test)
    if X_train.shape[0] != y_train.shape[0]:
        raise ValueError(f"X_train has {X_train.shape[0]} rows but y_train has {y_train.shape[0]}")
    if X_train.shape[0] < 2:
        raise ValueError(f"need at least 2 training rows; got {X_train.shape[0]}")
    X = np.vstack([X_train, X_test])
    m = X_train.shape[0]
    y = np.concatenate([y_train, np.zeros(X_test.shape[0])])
    data = Dataset(X, y, np.arange(m), np.arange(m, X.shape[0]), int(classes))
    pred, hp = _predict(method, data, _kernel_on(X), seed=seed, device=device)
    return (np.argmax(pred, axis=1) if classes else pred[:, 0]), hp
