"""Analytic kernels vs their own finite networks (SPEC §5), with negative controls.

Tolerance: relative Frobenius error <= 4 x its propagated Monte-Carlo standard error plus a
finite-width bias allowance 2 (L - 1) / width (zero at depth 1, where the Monte-Carlo mean is
unbiased at every width); see :mod:`ntklab.verify`. The negative controls must FAIL the very
same comparison, so the test discriminates: the NTK of the *other* parameterization (``jacot``
and ``paper`` share their NNGP but differ in the first-layer gradient scale, so their NTKs
differ), and for the NNGP, which ``jacot`` and ``paper`` share, the kernel of depth L + 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unit_rows

import ntklab
from ntklab.empirical import empirical_ntk, monte_carlo_kernels, monte_carlo_nngp
from ntklab.verify import relative_error, threshold

OTHER = {"jacot": "paper", "paper": "jacot", "arora": "jacot"}
WIDTH, SAMPLES = 256, 400


@pytest.mark.parametrize(
    "depth", [1, 2, pytest.param(3, marks=pytest.mark.slow)], ids=lambda d: f"depth{d}"
)
@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
def test_analytic_matches_monte_carlo(parameterization, depth):
    X = unit_rows(8, 4, seed=11)
    arch = ntklab.Architecture(depth, parameterization)
    est = monte_carlo_kernels(
        arch, X, width=WIDTH, n_samples=SAMPLES, seed=depth, nngp_estimator="last_hidden",
        device="cpu",
    )  # fmt: skip
    nngp, ntk = arch.kernels(X)
    wrong = {
        "ntk": ntklab.Architecture(depth, OTHER[parameterization]).ntk(X),
        "nngp": ntklab.Architecture(depth + 1, parameterization).nngp(X),
    }
    for kind, analytic in (("nngp", nngp), ("ntk", ntk)):
        rel, mc = relative_error(est[kind], analytic)
        tol = threshold(mc, depth, WIDTH)
        assert mc < 0.05, f"{kind}: Monte-Carlo error {mc:.3g} too large to discriminate"
        assert rel <= tol, f"{kind}: relative error {rel:.4f} > tolerance {tol:.4f}"
        rel_wrong, _ = relative_error(est[kind], wrong[kind])
        assert rel_wrong > tol, f"negative control for {kind} passed: {rel_wrong:.4f} <= {tol:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("depth", [1, 2])
def test_nngp_is_the_covariance_of_outputs(depth):
    """Raw f(x) f(z) over many narrow networks (the SPEC §5 statement, no conditioning)."""
    X = unit_rows(5, 3, seed=12)
    arch = ntklab.Architecture(depth, "paper")
    width = 32
    mean, se = monte_carlo_nngp(arch, X, width=width, n_samples=3000, seed=5, device="cpu")
    K = arch.nngp(X)
    rel, mc = relative_error(ntklab.empirical.MonteCarloEstimate(mean, se, 3000, width), K)
    assert rel <= threshold(mc, depth, width)
    # elementwise: within 4.5 standard errors (+ bias allowance) everywhere
    bias = 2.0 * (depth - 1) / width * np.abs(K)
    assert np.all(np.abs(mean - K) <= 4.5 * se + bias)
    wrong = ntklab.Architecture(depth + 1, "paper").nngp(X)
    assert relative_error(ntklab.empirical.MonteCarloEstimate(mean, se, 3000, width), wrong)[
        0
    ] > 2 * threshold(mc, depth, width)


def test_ntk_error_shrinks_with_width():
    """One network's empirical NTK approaches the analytic NTK like 1/sqrt(width)."""
    X = unit_rows(6, 4, seed=13)
    arch = ntklab.Architecture(2, "paper")
    K = arch.ntk(X)

    def mean_error(width):
        errs = []
        for seed in range(6):
            net = arch.network(width, seed=seed, in_features=4, device="cpu")
            errs.append(np.linalg.norm(empirical_ntk(net, X) - K) / np.linalg.norm(K))
        return np.mean(errs)

    e_small, e_large = mean_error(32), mean_error(512)
    # expected ratio sqrt(512 / 32) = 4; demand at least 2.5
    assert e_large < e_small / 2.5, (e_small, e_large)


def test_monte_carlo_reproducible_and_validated():
    X = unit_rows(4, 3, seed=14)
    arch = ntklab.Architecture(1)
    a = monte_carlo_kernels(arch, X, width=16, n_samples=5, seed=3, device="cpu")
    b = monte_carlo_kernels(arch, X, width=16, n_samples=5, seed=3, device="cpu", max_bytes=1)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(a[kind].mean, b[kind].mean, rtol=1e-10)
        np.testing.assert_allclose(a[kind].standard_error, b[kind].standard_error, rtol=1e-8)
        assert np.all(a[kind].standard_error > 0)
    c = monte_carlo_kernels(arch, X, width=16, n_samples=5, seed=4, device="cpu")
    assert not np.allclose(a["ntk"].mean, c["ntk"].mean)
    # Z given: rectangular and consistent with the symmetric call
    d = monte_carlo_kernels(arch, X, X[:2], width=16, n_samples=5, seed=3, device="cpu")
    np.testing.assert_allclose(d["ntk"].mean, a["ntk"].mean[:, :2], rtol=1e-6)
    # mean over networks == mean of empirical_ntk of the same networks
    from ntklab.empirical import derive_seeds

    nets = [arch.network(16, seed=s, in_features=3, device="cpu") for s in derive_seeds(3, 5)]
    direct = np.mean([empirical_ntk(n, X) for n in nets], axis=0)
    np.testing.assert_allclose(a["ntk"].mean, direct, rtol=1e-5)
    with pytest.raises(ValueError, match="n_samples"):
        monte_carlo_kernels(arch, X, width=16, n_samples=1, seed=0)
    with pytest.raises(ValueError, match="width"):
        monte_carlo_kernels(arch, X, width=0, n_samples=5, seed=0)
    with pytest.raises(ValueError, match="nngp_estimator"):
        monte_carlo_kernels(arch, X, width=4, n_samples=5, seed=0, nngp_estimator="x")
    with pytest.raises(ValueError, match="arch"):
        monte_carlo_kernels("jacot", X, width=4, n_samples=5, seed=0)
