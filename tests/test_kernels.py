"""Analytic kernels: one property suite over every kernel, and closed forms (SPEC §2).

The closed-form references below are written independently of ntklab (scalar ``math`` code
and numerical integration), from the formulas in SPEC §1-§2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import unit_rows
from scipy import integrate

import ntklab
from ntklab.kernels import laplacian, rbf


def _network_kernel(parameterization, depth, which):
    arch = ntklab.Architecture(depth, parameterization)
    return getattr(arch, which)


KERNELS = {
    f"{w}-{p}-L{d}": _network_kernel(p, d, w)
    for p in ("jacot", "arora", "paper")
    for d in (1, 2, 3)
    for w in ("nngp", "ntk")
}
KERNELS["laplacian"] = laplacian
KERNELS["rbf"] = rbf


@pytest.fixture
def X_hard(X_unit):
    """Unit rows with an antipodal and a near-duplicate pair, plus rows of other norms."""
    extra = np.vstack([3.0 * X_unit[2], 0.2 * X_unit[3] + 1e-12])
    return np.vstack([X_unit, extra])


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_properties(name, X_hard):
    k = KERNELS[name]
    X = X_hard
    K = k(X)
    assert K.dtype == np.float64 and K.shape == (len(X), len(X))
    assert np.all(np.isfinite(K))
    assert np.array_equal(K, K.T), "not exactly symmetric"
    eig = np.linalg.eigvalsh(K)
    assert eig.min() >= -1e-10 * eig.max(), f"not PSD: {eig.min()}"
    np.testing.assert_allclose(k(X, X), K, rtol=1e-12, atol=1e-15)
    alone = np.array([k(x[None, :])[0, 0] for x in X])
    np.testing.assert_allclose(np.diag(K), alone, rtol=1e-12)
    # rectangular blocks agree with the full matrix
    np.testing.assert_allclose(k(X[:3], X[2:]), K[:3, 2:], rtol=1e-12, atol=1e-15)
    # the near-duplicate row (last of X_unit) has (nearly) the same kernel row as row 0
    np.testing.assert_allclose(K[5], K[0], rtol=1e-6, atol=1e-12)


# ---- independent scalar references ----------------------------------------------------------
def first_layer(parameterization, d, sigma_w):
    """(a1, v1) from the table in SPEC §1."""
    return {
        "jacot": (sigma_w / math.sqrt(d), 1.0),
        "arora": (1.0, 1.0),
        "paper": (1.0, sigma_w**2 / d),
    }[parameterization]


def relu_closed_form(s_xx, s_xz, s_zz):
    """Cho & Saul's E[phi(u)phi(v)], E[phi'(u)phi'(v)] (SPEC §2), written with math."""
    rho = max(-1.0, min(1.0, s_xz / math.sqrt(s_xx * s_zz)))
    t = math.acos(rho)
    e_phi = math.sqrt(s_xx * s_zz) * (math.sin(t) + (math.pi - t) * math.cos(t)) / (2 * math.pi)
    return e_phi, (math.pi - t) / (2 * math.pi)


def relu_by_integration(s_xx, s_xz, s_zz):
    """The same expectations by numerical integration of the bivariate normal density."""
    det = s_xx * s_zz - s_xz**2

    def density(v, u):
        q = (s_zz * u * u - 2 * s_xz * u * v + s_xx * v * v) / det
        return math.exp(-0.5 * q) / (2 * math.pi * math.sqrt(det))

    opts = dict(epsabs=1e-13, epsrel=1e-11)
    e_phi = integrate.dblquad(lambda v, u: u * v * density(v, u), 0, np.inf, 0, np.inf, **opts)[0]
    e_dphi = integrate.dblquad(density, 0, np.inf, 0, np.inf, **opts)[0]
    return e_phi, e_dphi


def relu_square_by_integration(s):
    """E[phi(u)^2] for u ~ N(0, s)."""
    f = lambda u: u * u * math.exp(-u * u / (2 * s)) / math.sqrt(2 * math.pi * s)  # noqa: E731
    return integrate.quad(f, 0, np.inf, epsabs=1e-14, epsrel=1e-12)[0]


def reference_kernels(x, z, parameterization, depth, sigma_w, beta, relu):
    """Scalar NNGP and NTK of SPEC §2 for one pair, with a chosen ReLU-moment routine."""
    d = len(x)
    a1, v1 = first_layer(parameterization, d, sigma_w)
    dot = lambda p, q: sum(pi * qi for pi, qi in zip(p, q, strict=True))  # noqa: E731
    s_xx, s_xz, s_zz = (a1**2 * v1 * dot(p, q) + beta**2 for p, q in ((x, x), (x, z), (z, z)))
    ntk = a1**2 * dot(x, z) + beta**2
    for _ in range(depth):
        e_phi, e_dphi = relu(s_xx, s_xz, s_zz)
        if relu is relu_by_integration:
            e_xx, e_zz = relu_square_by_integration(s_xx), relu_square_by_integration(s_zz)
        else:
            e_xx, e_zz = s_xx / 2, s_zz / 2
        s_xz = sigma_w**2 * e_phi + beta**2
        ntk = ntk * sigma_w**2 * e_dphi + s_xz
        s_xx, s_zz = sigma_w**2 * e_xx + beta**2, sigma_w**2 * e_zz + beta**2
    return s_xz, ntk


PAIRS = [
    ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ([0.6, 0.8, 0.0], [0.6, -0.2, 0.5]),
    ([1.5, -0.3, 0.2], [-0.4, 0.9, 2.0]),
    ([0.3, 0.1, -0.7], [-0.3, -0.1, 0.7]),  # antipodal
]


@pytest.mark.parametrize("parameterization", ["jacot", "paper", "arora"])
@pytest.mark.parametrize("sigmas", [(None, None), (1.3, 0.25)])
def test_depth1_by_hand(parameterization, sigmas):
    sigma_w, sigma_b = sigmas
    arch = ntklab.Architecture(1, parameterization, sigma_w=sigma_w, sigma_b=sigma_b)
    defaults = {"jacot": (1.0, 0.1), "paper": (1.0, 0.1), "arora": (math.sqrt(2), 0.0)}
    sw = sigma_w if sigma_w is not None else defaults[parameterization][0]
    sb = sigma_b if sigma_b is not None else defaults[parameterization][1]
    for x, z in PAIRS:
        nngp, ntk = arch.kernels(np.array([x]), np.array([z]))
        ref_nngp, ref_ntk = reference_kernels(x, z, parameterization, 1, sw, sb, relu_closed_form)
        assert nngp[0, 0] == pytest.approx(ref_nngp, rel=1e-12)
        assert ntk[0, 0] == pytest.approx(ref_ntk, rel=1e-12)


def test_depth1_numbers_written_out():
    """jacot and paper at d = 2, x = (1, 0), z = (0, 1): theta = pi/2, hand arithmetic."""
    x, z = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    # Sigma^1(x,x) = 1/2 + 0.01 = 0.51 for both; Sigma^1(x,z) = 0.01, rho = 0.01/0.51.
    t = math.acos(0.01 / 0.51)
    e_phi = 0.51 * (math.sin(t) + (math.pi - t) * math.cos(t)) / (2 * math.pi)
    e_dphi = (math.pi - t) / (2 * math.pi)
    nngp = e_phi + 0.01
    jacot = ntklab.Architecture(1, "jacot").kernels(x, z)
    paper = ntklab.Architecture(1, "paper").kernels(x, z)
    assert jacot[0][0, 0] == pytest.approx(nngp, rel=1e-13)
    assert paper[0][0, 0] == pytest.approx(nngp, rel=1e-13)
    # Theta^1(x,z) = a1^2 x.z + beta^2 = 0.01 for both (x.z = 0): the NTKs agree here ...
    assert jacot[1][0, 0] == pytest.approx(0.01 * e_dphi + nngp, rel=1e-13)
    # ... but not on the diagonal: Theta^1(x,x) = 1/2 + 0.01 (jacot), 1 + 0.01 (paper).
    assert ntklab.Architecture(1, "jacot").ntk(x)[0, 0] == pytest.approx(
        0.51 * 0.5 + 0.51 / 2 + 0.01
    )
    assert ntklab.Architecture(1, "paper").ntk(x)[0, 0] == pytest.approx(
        1.01 * 0.5 + 0.51 / 2 + 0.01
    )


def test_arora_L1_spec_check():
    """SPEC §2: arora, L = 1, unit-norm x: Theta = x.x'(pi - t)/pi + (sin t + (pi - t) cos t)/pi."""
    X = unit_rows(6, 5, seed=31)
    K = ntklab.Architecture(1, "arora").ntk(X)
    for i in range(6):
        for j in range(6):
            c = float(X[i] @ X[j])
            # the angle from normalized rows (|x| = 1 only up to round-off, and arccos is
            # infinitely steep at 1)
            t = math.acos(min(1.0, max(-1.0, c / math.sqrt((X[i] @ X[i]) * (X[j] @ X[j])))))
            ref = (
                c * (math.pi - t) / math.pi + (math.sin(t) + (math.pi - t) * math.cos(t)) / math.pi
            )
            assert K[i, j] == pytest.approx(ref, rel=1e-11, abs=1e-14)


@pytest.mark.parametrize("parameterization", ["jacot", "paper", "arora"])
def test_depth2_by_numerical_integration(parameterization):
    """Depth 2 against an implementation that integrates the Gaussian expectations."""
    arch = ntklab.Architecture(2, parameterization, sigma_w=1.2, sigma_b=0.3)
    for x, z in PAIRS[1:3]:
        nngp, ntk = arch.kernels(np.array([x]), np.array([z]))
        ref = reference_kernels(x, z, parameterization, 2, 1.2, 0.3, relu_by_integration)
        assert nngp[0, 0] == pytest.approx(ref[0], rel=1e-7)
        assert ntk[0, 0] == pytest.approx(ref[1], rel=1e-7)


def test_jacot_and_paper_share_nngp_not_ntk():
    X = unit_rows(7, 6, seed=32)
    for depth in (1, 2, 3):
        jacot, paper = ntklab.Architecture(depth, "jacot"), ntklab.Architecture(depth, "paper")
        np.testing.assert_allclose(jacot.nngp(X), paper.nngp(X), rtol=1e-12)
        assert np.abs(jacot.ntk(X) - paper.ntk(X)).max() > 0.1 * np.abs(paper.ntk(X)).max()


def test_blocked_equals_unblocked():
    X = unit_rows(23, 4, seed=33)
    arch = ntklab.Architecture(2, "paper")
    full = arch.kernels(X)
    blocked = arch.kernels(X, block_rows=5)
    for a, b in zip(full, blocked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_laplacian_and_rbf_by_hand():
    x, z = np.array([[1.0, 2.0]]), np.array([[4.0, -2.0]])  # distance 5
    assert laplacian(x, z)[0, 0] == pytest.approx(math.exp(-5.0), rel=1e-13)
    assert laplacian(x, z, length_scale=2.5)[0, 0] == pytest.approx(math.exp(-2.0), rel=1e-13)
    assert rbf(x, z, length_scale=5.0)[0, 0] == pytest.approx(math.exp(-0.5), rel=1e-13)


@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_diagonal_is_exact_not_arccos_roundoff(parameterization, depth):
    """On the diagonal rho = 1 exactly: arccos(1 - eps) ~ sqrt(2 eps) must not leak in.

    At x = x' the recursion is scalar: Sigma' = sigma_w^2 Sigma / 2 + beta^2,
    Sigma_dot = sigma_w^2 / 2, Theta' = Theta Sigma_dot + Sigma'.
    """
    X = np.random.default_rng(5).standard_normal((300, 15)) * 3.0
    arch = ntklab.Architecture(depth, parameterization)
    nngp, ntk = arch.kernels(X, block_rows=64)  # several diagonal blocks
    d = X.shape[1]
    p = ntklab.PARAMETERIZATIONS[parameterization]
    a1, v1 = p.first_layer(d, arch.sigma_w)
    sq = np.einsum("ij,ij->i", X, X)
    sigma = a1**2 * v1 * sq + arch.sigma_b**2
    theta = a1**2 * sq + arch.sigma_b**2
    for _ in range(depth):
        sigma = arch.sigma_w**2 * sigma / 2 + arch.sigma_b**2
        theta = theta * arch.sigma_w**2 / 2 + sigma
    np.testing.assert_allclose(np.diag(nngp), sigma, rtol=1e-13)
    np.testing.assert_allclose(np.diag(ntk), theta, rtol=1e-13)
