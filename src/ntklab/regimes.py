r"""Lazy and rich training: learning rates relative to the kernel, and λ_max(Θ_t).

ntklab's loss on the :math:`m` fitted rows is :math:`\frac1m\sum_i (f(x_i) - y_i)^2`
(SPEC §3), so one full-batch gradient step of the linearized network is
:math:`f \leftarrow f - \frac{2\eta}{m}\Theta (f - y)`, stable iff
:math:`\eta < \eta_\text{crit} = m / \lambda_{\max}(\Theta)`. A learning rate written
``"xC"`` (e.g. ``"x0.5"``) is :math:`C\,\eta_\text{crit}` with :math:`\Theta = \hat\Theta_0`,
the network's *own* empirical NTK at initialization on its fitted rows
(:func:`critical_lr`), so one config spans lazy (:math:`C \ll 1`), the catapult window
:math:`1 < C < 2` and divergence (:math:`C \gtrsim 2`) at any width and parameterization.

Lewkowycz et al. (2020) write the loss as :math:`\frac{1}{2m}\sum_i (f - y)^2` and the
kernel normalized by :math:`m`, so their critical rate :math:`2/\lambda_0` is ntklab's
:math:`\eta_\text{crit}` (C = 1) and their maximal rate :math:`\approx 4/\lambda_0` is
C ≈ 2: between the two, the loss first grows, the top eigenvalue of the NTK falls until the
step is stable again (:math:`\lambda_{\max}(\Theta_T) < 2m/\eta` here), and training then
converges in a flatter region (the *catapult*). :class:`LambdaTracker` records
:math:`\lambda_{\max}(\hat\Theta_t)` at the recorded epochs of training so that this shows
in the curves (``curve_lambda_max``).

:class:`EmpiricalKernel` gives the analytic-kernel interface (``kernels``) of a
network's empirical NTK at initialization, the kernel of its exact linearization (Lee et al.
2019), for parameterizations with no fixed NTK limit (``mup``).

References
----------
Lewkowycz, A., Bahri, Y., Dyer, E., Sohl-Dickstein, J. and Gur-Ari, G. (2020). The large
learning rate phase of deep learning: the catapult mechanism. arXiv:2003.02218.
Chizat, L., Oyallon, E. and Bach, F. (2019). On lazy training in differentiable
programming. NeurIPS 32.
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
"""

from __future__ import annotations

import math
import re

import numpy as np
import scipy.linalg

from .predict import spectral_lr

__all__ = [
    "parse_lr_multiple",
    "lambda_max",
    "critical_lr",
    "LambdaTracker",
    "EmpiricalKernel",
]

_MULTIPLE = re.compile(r"^x(.*)$")


def parse_lr_multiple(value, name: str = "lr") -> float | None:
    """The C of a learning rate ``"xC"`` (C times the critical rate), ``None`` for any other
    value; a malformed multiple or C ≤ 0 raises ``ValueError`` (one line, naming ``name``).

    >>> parse_lr_multiple("x0.5"), parse_lr_multiple(0.1), parse_lr_multiple("auto")
    (0.5, None, None)
    """
    if not isinstance(value, str):
        return None
    match = _MULTIPLE.match(value.strip())
    if match is None:
        return None
    try:
        c = float(match.group(1))
    except ValueError:
        c = float("nan")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(
            f"{name} = {value!r}: a multiple of the critical rate must be 'x' and a number > 0, "
            "e.g. 'x0.5' (half of m / lambda_max of the network's NTK at init)"
        )
    return c


def lambda_max(net, X: np.ndarray) -> float:
    r""":math:`\lambda_{\max}` of the empirical NTK :math:`\hat\Theta` of ``net`` on ``X``
    (m, d), float64 (the whole m × m kernel, then its top eigenvalue only).

    Parameters
    ----------
    net : torch.nn.Module
        A network with one scalar output per row (e.g. from :meth:`Architecture.network`).
    X : ndarray (m, d)
        Finite float64 rows (not checked: for callers inside ntklab).
    """
    from .empirical import empirical_ntk

    K = empirical_ntk(net, X, check_input=False)
    if not np.all(np.isfinite(K)):
        return float("nan")
    m = K.shape[0]
    top = scipy.linalg.eigh(K, eigvals_only=True, subset_by_index=[m - 1, m - 1],
                            check_finite=False)  # fmt: skip
    return float(top[-1])


def critical_lr(net, X: np.ndarray) -> tuple[float, float]:
    r"""``(eta_crit, lambda_max)``: :math:`\eta_\text{crit} = m / \lambda_{\max}(\hat\Theta_0)`
    of ``net``'s own empirical NTK on its ``m`` fitted rows ``X``, the rate at which full-batch
    gradient descent on ntklab's loss stops being stable for the linearized network."""
    lam = lambda_max(net, X)
    if not lam > 0:
        raise ValueError(
            f"the network's empirical NTK on its fitted rows has no positive eigenvalue "
            f"(largest {lam:.3g}); a learning rate relative to it is undefined"
        )
    return spectral_lr(X.shape[0], lam, 1.0), lam


class LambdaTracker:
    r"""Records :math:`\lambda_{\max}(\hat\Theta_t)` of a network on fixed rows during training.

    Pass it as ``on_record`` to :func:`ntklab.train_ensemble`: it is called with the member,
    the epoch and the network (:math:`f`, without any centering or scale) at every recorded
    epoch.

    Attributes
    ----------
    epochs : list of int
    values : list of float
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        self.epochs: list[int] = []
        self.values: list[float] = []

    def __call__(self, member: int, epoch: int, net) -> None:
        self.epochs.append(int(epoch))
        self.values.append(lambda_max(net, self.X))


class EmpiricalKernel:
    r"""The kernel-map interface of :class:`ntklab.Architecture` for a network's empirical
    NTK at initialization, :math:`\hat\Theta_0` (the kernel of its exact linearization).

    ``kernels(X, Z, check_input=False)`` returns ``(None, Θ̂₀(X, Z))``: what
    :func:`ntklab.equivalence_metrics` reads (with ``check_input=False``), so that a network of
    a parameterization with no fixed NTK (``mup``) is compared with its own linearization.
    """

    def __init__(self, initial_network):
        self.initial_network = initial_network

    def kernels(self, X, Z=None, *, check_input: bool = True):
        """``(None, Θ̂₀(X, Z))``; ``check_input`` as in :func:`ntklab.empirical_ntk`."""
        from .empirical import empirical_ntk

        return None, empirical_ntk(self.initial_network, X, Z, check_input=check_input)
