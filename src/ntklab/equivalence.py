r"""How far a trained network is from its NTK prediction at the same training time.

Lee et al. (2019) show that a wide network trained by gradient descent stays close to its
linearization around the initial parameters, which evolves as
:func:`ntklab.predict.gradient_descent_mse` with the network's own initial outputs
:math:`f_0`. :func:`equivalence_metrics` measures, for one trained network,

* the NN–linearized discrepancy on test points, with the *analytic* NTK Θ and the same
  :math:`f_0`, learning rate and number of steps :math:`T`:

  .. math::

      \text{nn\_lin\_rms} = \operatorname{RMS}(f_{NN} - f_{lin}), \qquad
      \text{nn\_lin\_rel} = \text{nn\_lin\_rms} / \operatorname{RMS}(f_{lin}),

  which shrinks like :math:`1/\sqrt{\text{width}}` in the NTK parameterization;
* the same against the NTK *mean* prediction (no :math:`f_0`: the mean over
  initializations), ``nn_mean_rms`` and ``nn_mean_rel``, which does not shrink unless the
  network is centered;
* the kernel drift :math:`\|\hat\Theta_T - \hat\Theta_0\|_F / \|\hat\Theta_0\|_F` and the
  finite-width error :math:`\|\hat\Theta_0 - \Theta\|_F / \|\Theta\|_F` of the empirical NTK
  :math:`\hat\Theta` (:func:`ntklab.empirical.empirical_ntk`), on a seeded random subsample of
  at most ``max_kernel_points`` training points;
* (with ``elin=True``, the default) the discrepancy against the linearization with the *empirical*
  initial NTK :math:`\hat\Theta_0` (Lee et al.'s exact linearized network), ``nn_elin_rms``
  and ``nn_elin_rel``; this isolates the drift from the finite-width error of
  :math:`\hat\Theta_0`.

References
----------
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import check_int, check_matrix, check_vector
from .architecture import Architecture
from .empirical import empirical_ntk
from .metrics import rms, rmse
from .predict import gradient_descent_mse, spectral_lr
from .training import CenteredNetwork, TrainResult

__all__ = ["EquivalenceResult", "equivalence_metrics"]


@dataclass
class EquivalenceResult:
    """Equivalence measures of one trained network against its NTK.

    Attributes
    ----------
    metrics : dict of str to float
        ``nn_lin_rms``, ``nn_lin_rel``, ``nn_mean_rms``, ``nn_mean_rel``, ``kernel_drift``,
        ``finite_width_error``, ``ntk_same_t_rmse``, ``ntk_inf_rmse``, ``rmse``,
        ``train_rmse`` (names of :data:`ntklab.metrics.METRICS`), plus ``ntk_mean_same_t_rmse``,
        ``ntk_mean_inf_rmse`` (the mean prediction, i.e. kernel regression at T = ∞) and, with
        ``elin=True`` (default), ``nn_elin_rms`` and ``nn_elin_rel``. NaN where undefined (e.g. after
        divergence).
    curves : dict of str to (ndarray, ndarray)
        ``curve_train_loss``, ``curve_test_rmse`` (network) and ``curve_ntk_test_rmse``
        (linearized network with the same f0) as ``(epochs, values)``.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _rel(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def _trainable(network):
    """The module whose parameters were trained (the inner network of a centered one)."""
    return network.network if isinstance(network, CenteredNetwork) else network


def equivalence_metrics(
    result: TrainResult,
    arch,
    X_train,
    y_train,
    X_test,
    y_test,
    *,
    max_kernel_points: int = 200,
    seed: int = 0,
    elin: bool = True,
    kernels: tuple[np.ndarray, np.ndarray] | None = None,
    eig: tuple[np.ndarray, np.ndarray] | None = None,
    check_input: bool = True,
) -> EquivalenceResult:
    r"""All equivalence measures of a trained network against its NTK at the same T.

    The linearized prediction uses the analytic NTK ``arch.ntk`` on train and test points,
    the network's own initial outputs :math:`f_0` (0 for a centered network), its learning
    rate and its number of gradient steps :math:`T` = epochs × steps per epoch
    (with mini-batches this is an approximation: SGD follows the full-batch linearized
    dynamics only on average).

    Parameters
    ----------
    result : TrainResult
        From :func:`ntklab.train` or :func:`ntklab.train_ensemble`, trained on
        ``(X_train, y_train)``.
    arch : Architecture
        The network's architecture (its analytic NTK is the reference).
    X_train, y_train, X_test, y_test : array_like
    max_kernel_points : int, default 200
        At most this many training points (a seeded random subsample) for the empirical NTK.
    seed : int, default 0
        Seed of that subsample.
    elin : bool, default True
        Also compare with the linearization using the empirical initial NTK on all training
        and test points (``nn_elin_rms``, ``nn_elin_rel``); costs an empirical NTK of size
        (m + n_test) × m (cheap for :class:`~ntklab.FullyConnectedNetwork`, whose empirical
        NTK is computed layer by layer).
    kernels : (ndarray (m, m), ndarray (n, m)), optional
        The analytic NTK ``(Θ(X_train, X_train), Θ(X_test, X_train))`` when the caller has
        it already (a study's trial computes each kernel once,
        :class:`~ntklab.study.TrialContext`); computed here otherwise.
    eig : (ndarray (m,), ndarray (m, m)), optional
        ``np.linalg.eigh`` of its training block, likewise.
    check_input : bool, default True
        ``False`` skips the checks (:mod:`ntklab._validation`): ``result`` is then a
        :class:`TrainResult` of a network of ``arch`` (or of an object with ``arch``'s
        ``kernels(X, Z, check_input=False)``, e.g. :class:`ntklab.regimes.EmpiricalKernel`),
        ``X_train`` (m, d) and ``X_test`` (n, d) finite float64 arrays with ``d`` the
        network's ``in_features``, ``y_train`` (m,) and ``y_test`` (n,) finite float64,
        ``max_kernel_points`` >= 2, ``seed`` >= 0 and ``kernels``, ``eig`` of the shapes above.

    Returns
    -------
    EquivalenceResult
    """
    if check_input:
        X_train, y_train, X_test, y_test, kernels = _checked_data(
            result, arch, X_train, y_train, X_test, y_test, kernels, eig
        )
        max_kernel_points = check_int(max_kernel_points, "max_kernel_points", minimum=2)
        seed = check_int(seed, "seed", minimum=0)
    nan = float("nan")
    m = X_train.shape[0]
    # checked input: the kernels and predictions below check nothing again (_validation)
    if kernels is None:
        ntk_train = arch.kernels(X_train, check_input=False)[1]
        ntk_test_train = arch.kernels(X_test, X_train, check_input=False)[1]
    else:
        ntk_train, ntk_test_train = kernels
    f0_train = result.initial_predict(X_train, check_input=False)
    f0_test = result.initial_predict(X_test, check_input=False)
    steps = result.steps
    step_curve = result.epochs.astype(np.float64) * result.steps_per_epoch

    if eig is None:  # one eigendecomposition for every prediction below
        eig = np.linalg.eigh(ntk_train)
    zeros_train, zeros_test = np.zeros(m), np.zeros(X_test.shape[0])

    def predict(lr, steps, f0_tr, f0_te):
        steps = np.atleast_1d(np.asarray(steps, dtype=np.float64))
        return gradient_descent_mse(
            ntk_train,
            ntk_test_train,
            y_train,
            lr=lr,
            steps=steps,
            f0_train=f0_tr,
            f0_test=f0_te,
            eig=eig,
            check_input=False,
        )[1]

    lin_curve = predict(result.lr, step_curve, f0_train, f0_test)
    lin_t = lin_curve[-1]
    mean_t = predict(result.lr, steps, zeros_train, zeros_test)[0]
    # T = inf does not depend on a stable rate; for an unstable one use the automatic rate
    inf_lr = min(result.lr, spectral_lr(m, max(float(eig[0][-1]), np.finfo(float).tiny)))
    lin_inf = predict(inf_lr, np.inf, f0_train, f0_test)[0]
    mean_inf = predict(inf_lr, np.inf, zeros_train, zeros_test)[0]

    metrics: dict[str, float] = {
        "ntk_same_t_rmse": rmse(lin_t, y_test),
        "ntk_inf_rmse": rmse(lin_inf, y_test),
        "ntk_mean_same_t_rmse": rmse(mean_t, y_test),
        "ntk_mean_inf_rmse": rmse(mean_inf, y_test),
    }
    ok = not result.diverged
    f_nn = result.predict(X_test, check_input=False) if ok else None
    if ok:
        metrics["rmse"] = rmse(f_nn, y_test)
        metrics["train_rmse"] = rmse(result.predict(X_train, check_input=False), y_train)
        metrics["nn_lin_rms"] = rmse(f_nn, lin_t)
        metrics["nn_lin_rel"] = _rel(metrics["nn_lin_rms"], rms(lin_t))
        metrics["nn_mean_rms"] = rmse(f_nn, mean_t)
        metrics["nn_mean_rel"] = _rel(metrics["nn_mean_rms"], rms(mean_t))
    else:
        for key in ("rmse", "train_rmse", "nn_lin_rms", "nn_lin_rel", "nn_mean_rms", "nn_mean_rel"):
            metrics[key] = nan

    # empirical NTK on a seeded subsample of the training points
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(m, size=min(m, max_kernel_points), replace=False))
    Xs = X_train[idx]
    emp0 = empirical_ntk(result.initial_network, Xs, check_input=False)
    ntk_s = ntk_train[np.ix_(idx, idx)]
    metrics["finite_width_error"] = float(np.linalg.norm(emp0 - ntk_s) / np.linalg.norm(ntk_s))
    if ok:
        empT = empirical_ntk(_trainable(result.network), Xs, check_input=False)
        metrics["kernel_drift"] = float(np.linalg.norm(empT - emp0) / np.linalg.norm(emp0))
    else:
        metrics["kernel_drift"] = nan

    if elin:
        if ok:
            emp_all = empirical_ntk(
                result.initial_network, np.vstack([X_train, X_test]), X_train, check_input=False
            )
            emp_train = 0.5 * (emp_all[:m] + emp_all[:m].T)
            _, elin_t = gradient_descent_mse(
                emp_train, emp_all[m:], y_train, lr=result.lr, steps=steps,
                f0_train=f0_train, f0_test=f0_test, check_input=False,
            )  # fmt: skip
            metrics["nn_elin_rms"] = rmse(f_nn, elin_t)
            metrics["nn_elin_rel"] = _rel(metrics["nn_elin_rms"], rms(elin_t))
        else:
            metrics["nn_elin_rms"] = metrics["nn_elin_rel"] = nan

    curves = {"curve_train_loss": (result.epochs, result.train_loss)}
    if result.test_rmse is not None:  # on the test data given to train()
        curves["curve_test_rmse"] = (result.epochs, result.test_rmse)
    curves["curve_ntk_test_rmse"] = (
        result.epochs,
        rmse(lin_curve, y_test),
    )
    return EquivalenceResult(metrics=metrics, curves=curves)


def _checked_data(result, arch, X_train, y_train, X_test, y_test, kernels, eig):
    """The checks of :func:`equivalence_metrics`' network, architecture and arrays; returns
    the arrays (and ``kernels``) as float64."""
    if not isinstance(result, TrainResult):
        raise ValueError(
            f"result must be a TrainResult from ntklab.train; got {type(result).__name__}"
        )
    if not isinstance(arch, Architecture):
        raise ValueError(
            f"arch must be the network's ntklab.Architecture; got {type(arch).__name__}"
        )
    X_train = check_matrix(X_train, "X_train")
    y_train = check_vector(y_train, "y_train", length=X_train.shape[0])
    X_test = check_matrix(X_test, "X_test", n_features=X_train.shape[1])
    y_test = check_vector(y_test, "y_test", length=X_test.shape[0])
    d = getattr(result.network, "in_features", X_train.shape[1])
    if X_train.shape[1] != d:
        raise ValueError(f"X_train has {X_train.shape[1]} features but the network expects {d}")
    m, n = X_train.shape[0], X_test.shape[0]
    if kernels is not None:
        kernels = tuple(check_matrix(k, f"kernels[{i}]") for i, k in enumerate(kernels))
    if kernels is not None and tuple(map(np.shape, kernels)) != ((m, m), (n, m)):
        raise ValueError(
            f"kernels must be (ntk(X_train), ntk(X_test, X_train)) of shapes ({m}, {m}) and "
            f"({n}, {m}); got {[np.shape(k) for k in kernels]}"
        )
    if eig is not None and tuple(map(np.shape, eig)) != ((m,), (m, m)):
        raise ValueError(
            f"eig must be np.linalg.eigh(ntk(X_train)): shapes ({m},) and ({m}, {m}); "
            f"got {[np.shape(e) for e in eig]}"
        )
    return X_train, y_train, X_test, y_test, kernels
