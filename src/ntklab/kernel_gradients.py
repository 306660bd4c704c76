r"""The NNGP and NTK with their derivatives in σ_w, β (``sigma_b``) and σ_w1, in float64.

Forward-mode differentiation of the recursion of SPEC §2: beside each layer's
:math:`\Sigma` and :math:`\Theta` the pass carries :math:`\partial\Sigma/\partial\theta_p`
and :math:`\partial\Theta/\partial\theta_p` for every hyperparameter :math:`\theta_p`. A dense
layer with coefficients :math:`(gv, g, \beta^2)` (:attr:`ntklab.layers.Dense.kernel_coefficients`)
maps

.. math::

    \Sigma' = gv\,\bar\Sigma + \beta^2, \qquad
    \Theta' = g\,\bar\Sigma + \beta^2 + gv\,\bar\Theta,

    \partial\Sigma' = \partial(gv)\,\bar\Sigma + gv\,\partial\bar\Sigma + \partial\beta^2,
    \qquad
    \partial\Theta' = \partial g\,\bar\Sigma + g\,\partial\bar\Sigma + \partial\beta^2
        + \partial(gv)\,\bar\Theta + gv\,\partial\bar\Theta,

and an activation maps :math:`(\Sigma, \Theta)` to :math:`(\bar\Sigma, \bar\Theta) = (F, G\,\Theta)`
with :math:`F = \mathbb E[\phi(u)\phi(v)]`, :math:`G = \mathbb E[\phi'(u)\phi'(v)]`, so
:math:`\partial\bar\Theta = \partial G\,\Theta + G\,\partial\Theta`. The activation supplies
:math:`\partial F` and :math:`\partial G` from the tangents of the pair's covariance entries
:math:`(a, b, c) = (\Sigma_{xx}, \Sigma_{zz}, \Sigma_{xz})` (:class:`ReLUMoments`; another
activation adds its own class to :data:`MOMENTS`). For ReLU (Cho & Saul 2009), with
:math:`\theta = \arccos(c/\sqrt{ab})` and :math:`r = \sqrt{ab - c^2}`:

.. math::

    F = \frac{r + (\pi - \theta)\,c}{2\pi}, \qquad G = \frac{\pi - \theta}{2\pi},

    \partial F = G\,\partial c + \frac{r}{4\pi}\Big(\frac{\partial a}{a} + \frac{\partial b}{b}\Big),
    \qquad
    \partial G = \frac{1}{2\pi r}\Big(\partial c - \frac c2\Big(\frac{\partial a}{a}
        + \frac{\partial b}{b}\Big)\Big).

:math:`\partial G` is 0 where :math:`\rho = \pm 1` (a point with itself: there
:math:`G \equiv 1/2` whatever the hyperparameters).

This numpy pass holds a few n × m arrays per hyperparameter; the compiled pass
(:func:`ntklab.kernels.relu_network_kernels`) stays the path for plain evaluation, and both
agree to round-off (``tests/test_kernel_gradients.py``).

References
----------
Cho, Y. and Saul, L. (2009). Kernel methods for deep learning. NeurIPS 22.
Jacot, A., Gabriel, F. and Hongler, C. (2018). Neural tangent kernel. NeurIPS 31.
Lee, J. et al. (2018). Deep neural networks as Gaussian processes. ICLR.
"""

from __future__ import annotations

import numpy as np

from .architecture import Architecture
from .parameterizations import PARAMETERIZATIONS

__all__ = ["HYPERPARAMETERS", "MOMENTS", "ReLUMoments", "dense_tangents", "kernels_and_gradients"]

#: The hyperparameters the gradient pass differentiates, in the order of its output.
HYPERPARAMETERS = ("sigma_w", "sigma_b", "sigma_w1")

_TINY = 1e-12  # 1 - rho^2 below this: rho counts as +-1 (dG = 0, as for a point with itself)


class ReLUMoments:
    r"""ReLU's Gaussian moments :math:`F, G` and their tangents (module docstring)."""

    name = "relu"

    def values(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, same: bool):
        """``(F, G, state)`` at variances ``a`` (n, 1), ``b`` (1, m) and covariances ``c``
        (n, m); ``same``: the pairs (i, i) are one input (exactly ρ = 1 there)."""
        s = np.sqrt(a * b)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(s > 0, c / np.where(s > 0, s, 1.0), 0.0)
        np.clip(rho, -1.0, 1.0, out=rho)
        if same:
            idx = np.arange(min(rho.shape))
            rho[idx, idx] = np.where(s[idx, idx] > 0, 1.0, 0.0)
        theta = np.arccos(rho)
        sin = np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        r = s * sin
        F = (r + (np.pi - theta) * rho * s) / (2 * np.pi)
        G = (np.pi - theta) / (2 * np.pi)
        inv_a = np.divide(1.0, a, out=np.zeros_like(a), where=a > 0)
        inv_b = np.divide(1.0, b, out=np.zeros_like(b), where=b > 0)
        interior = (sin * sin > _TINY) & (s > 0)
        inv_r = np.divide(1.0, r, out=np.zeros_like(r), where=interior)
        return F, G, (G, r, rho * s, inv_a, inv_b, inv_r)

    def diagonal(self, a: np.ndarray, da: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""F and its tangents for the pairs (x, x) of variance ``a``: :math:`a/2`, :math:`\partial a/2`."""
        return 0.5 * a, 0.5 * da

    def tangents(self, state, da: np.ndarray, db: np.ndarray, dc: np.ndarray):
        """``(dF, dG)`` for tangents ``da`` (n, 1), ``db`` (1, m), ``dc`` (n, m)."""
        G, r, c, inv_a, inv_b, inv_r = state
        rel = da * inv_a + db * inv_b
        dF = G * dc + r * rel / (4 * np.pi)
        dG = (dc - 0.5 * c * rel) * inv_r / (2 * np.pi)
        return dF, dG


#: Activations whose moment tangents the gradient pass knows, by name.
MOMENTS = {"relu": ReLUMoments()}


def dense_tangents(arch: Architecture, d: int) -> list[np.ndarray]:
    r"""Per dense layer (the input layer first), :math:`\partial(gv, g, \beta^2)/\partial\theta_p`
    as an array (P, 3), P = len(:data:`HYPERPARAMETERS`).

    Hidden layers have :math:`(gv, g, \beta^2) = (\sigma_w^2, \sigma_w^2, \beta^2)`. The input
    layer has :math:`(\sigma_{w1}^2, \sigma_{w1}^2)` (``jacot``), :math:`(\sigma_{w1}^2, d)`
    (``paper``) or :math:`(d, d)` (``arora``) before :math:`\beta^2`."""
    sw, sb, sw1 = arch.sigma_w, arch.sigma_b, arch.sigma_w1
    scale = PARAMETERIZATIONS[arch.parameterization].first_layer_scale
    first = np.zeros((len(HYPERPARAMETERS), 3))
    first[1, 2] = 2 * sb
    if scale == "sigma_w/sqrt(d)":
        first[2, :2] = 2 * sw1
    elif scale == "init":
        first[2, 0] = 2 * sw1
    hidden = np.zeros((len(HYPERPARAMETERS), 3))
    hidden[0, :2] = 2 * sw
    hidden[1, 2] = 2 * sb
    return [first] + [hidden] * arch.depth


def kernels_and_gradients(
    arch: Architecture, X: np.ndarray, Z: np.ndarray | None = None, *, activation: str = "relu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""NNGP, NTK and their derivatives in σ_w, β and σ_w1, by forward-mode differentiation.

    Parameters
    ----------
    arch : Architecture
        Its σ_w1 is taken as a hyperparameter of its own (for ``arora``, which has none, and
        wherever a caller ties σ_w1 to σ_w, add the σ_w1 derivative to the σ_w one).
    X : ndarray (n, d), float64
        Valid inputs (checked by the caller).
    Z : ndarray (m, d), float64, optional
        ``None``: the symmetric kernel of ``X`` with itself.
    activation : str
        A key of :data:`MOMENTS`.

    Returns
    -------
    nngp, ntk : ndarray (n, m)
    d_nngp, d_ntk : ndarray (n, m, 3)
        Derivatives in (σ_w, β, σ_w1), in the order of :data:`HYPERPARAMETERS`.
    """
    moments = MOMENTS[activation]
    same = Z is None
    Z = X if same else Z
    d = X.shape[1]
    P = len(HYPERPARAMETERS)
    coefs = [layer.kernel_coefficients for layer in arch.layers(d) if hasattr(layer, "gain")]
    tangents = dense_tangents(arch, d)
    # input "layer": mean inner products x.z/d and their variances; no NTK, no derivative
    S_bar = (X @ Z.T) / d
    a_bar = np.einsum("ij,ij->i", X, X)[:, None] / d
    b_bar = np.einsum("ij,ij->i", Z, Z)[None, :] / d
    T_bar = np.zeros_like(S_bar)
    dS_bar = np.zeros((P,) + S_bar.shape)
    da_bar = np.zeros((P,) + a_bar.shape)
    db_bar = np.zeros((P,) + b_bar.shape)
    dT_bar = np.zeros_like(dS_bar)
    for k, ((gv, g, b2), dcoef) in enumerate(zip(coefs, tangents, strict=True)):
        dgv, dg, db2 = (dcoef[:, j].reshape(P, 1, 1) for j in range(3))
        S = gv * S_bar + b2
        a = gv * a_bar + b2
        b = gv * b_bar + b2
        T = g * S_bar + b2 + gv * T_bar
        dS = dgv * S_bar + gv * dS_bar + db2
        da = dgv * a_bar + gv * da_bar + db2
        db = dgv * b_bar + gv * db_bar + db2
        dT = dg * S_bar + g * dS_bar + db2 + dgv * T_bar + gv * dT_bar
        if k == len(coefs) - 1:
            return S, T, np.moveaxis(dS, 0, -1), np.moveaxis(dT, 0, -1)
        # the activation on (S, T); its variances are the diagonal pairs (x, x), (z, z)
        F, G, state = moments.values(a, b, S, same)
        dF = np.empty_like(dS)
        dG = np.empty_like(dS)
        for p in range(P):
            dF[p], dG[p] = moments.tangents(state, da[p], db[p], dS[p])
        # variances after the activation: F of the pairs (x, x) and (z, z)
        a_bar, da_bar = moments.diagonal(a, da)
        b_bar, db_bar = moments.diagonal(b, db)
        S_bar, dS_bar = F, dF
        T_bar, dT_bar = G * T, dG * T + G * dT
    raise AssertionError("unreachable")  # pragma: no cover
