"""The compiled ReLU pass where a layer's correlation is within ~1e-7 of 1 while the inputs
are not parallel (inputs of tiny norm with biases, deep networks), against the same
recursion (SPEC §2) in 50-digit arithmetic (mpmath)."""

from __future__ import annotations

import numpy as np
import pytest

import ntklab
from ntklab.layers import Dense

mpmath = pytest.importorskip("mpmath")
EPS = np.finfo(np.float64).eps


def mp_recursion(arch: ntklab.Architecture, X: np.ndarray) -> tuple[list, list]:
    """NNGP and NTK of the rows of ``X`` with themselves, every operation at 50 digits
    (the layer constants as the float64 values the compiled pass uses)."""
    mp = mpmath.mp.clone()
    mp.dps = 50
    d = X.shape[1]
    x = [[mp.mpf(float(v)) for v in row] for row in X]
    n = len(x)
    idx = [(i, j) for i in range(n) for j in range(n)]
    cov = {(i, j): mp.fsum(a * b for a, b in zip(x[i], x[j], strict=True)) / d for i, j in idx}
    ntk = None
    for layer in arch.layers(d):
        if isinstance(layer, Dense):
            gv, g = mp.mpf(layer.gain * layer.weight_var), mp.mpf(layer.gain)
            b2 = mp.mpf(layer.bias) ** 2
            new = {k: cov[k] * g + b2 + (gv * ntk[k] if ntk else 0) for k in idx}
            cov, ntk = {k: cov[k] * gv + b2 for k in idx}, new
        else:
            new_cov, new_ntk = {}, {}
            for i, j in idx:
                norm = mp.sqrt(cov[i, i] * cov[j, j])
                rho = mp.mpf(1) if i == j else min(mp.mpf(1), cov[i, j] / norm)
                theta = mp.acos(rho)
                new_cov[i, j] = norm * (mp.sin(theta) + (mp.pi - theta) * rho) / (2 * mp.pi)
                new_ntk[i, j] = (mp.pi - theta) / (2 * mp.pi) * ntk[i, j]
            cov, ntk = new_cov, new_ntk
    to_np = lambda m: np.array([[float(m[i, j]) for j in range(n)] for i in range(n)])  # noqa: E731
    return to_np(cov), to_np(ntk)


@pytest.mark.parametrize(
    ("scale", "depth", "sigma_b"), [(1e-3, 3, 1.0), (1e-4, 5, 1.0), (3e-4, 8, 0.5)]
)
def test_relu_pass_near_rho_one_against_50_digits(scale, depth, sigma_b):
    """Rows of norm ~ scale: the first layer's correlation is 1 - O(scale² / β²) (1e-8 to
    1e-10 here). With sin θ = √(1 − ρ²) the NTK entries were off by 1e-12 to 1e-10 and the
    NNGP by ~20 ulp; with √((1 − ρ)(1 + ρ)) both are within the rounding of their inputs."""
    X = np.random.default_rng(0).standard_normal((3, 15)) * scale
    arch = ntklab.Architecture(depth, "jacot", sigma_w=1.0, sigma_b=sigma_b)
    nngp, ntk = arch.kernels(X)
    ref_nngp, ref_ntk = mp_recursion(arch, X)
    rho = ref_nngp[0, 1] / np.sqrt(ref_nngp[0, 0] * ref_nngp[1, 1])
    assert 1 - rho < 1e-4  # the regime of the test: nearly parallel features, not inputs
    np.testing.assert_allclose(nngp, ref_nngp, rtol=4 * EPS, atol=0)
    np.testing.assert_allclose(ntk, ref_ntk, rtol=1e-11, atol=0)
