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
import ntklab.verify
from ntklab.kernels import laplacian, rbf
from ntklab.layers import Dense


def _network_kernel(parameterization, depth, which, activation="relu"):
    arch = ntklab.Architecture(depth, parameterization, activation=activation)
    return getattr(arch, which)


KERNELS = {
    f"{w}-{p}-L{d}" + ("" if a == "relu" else f"-{a}"): _network_kernel(p, d, w, a)
    for a in ntklab.verify.ALL_ACTIVATIONS
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
@pytest.mark.filterwarnings("ignore:.*Gauss-Hermite series")  # rows of norm 3: a warning
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
    """Tiles change the order of work, not of arithmetic: results are bitwise equal."""
    X = unit_rows(23, 4, seed=33)
    arch = ntklab.Architecture(2, "paper")
    full = arch.kernels(X)
    for block in (1, 5, 23, 64):
        for a, b in zip(full, arch.kernels(X, block_rows=block), strict=True):
            assert np.array_equal(a, b)
        rect = arch.kernels(X, X[3:]), arch.kernels(X, X[3:], block_rows=block)
        for a, b in zip(*rect, strict=True):
            assert np.array_equal(a, b)
    for bad in (0, 5000):
        with pytest.raises(ValueError, match="block_rows"):
            arch.kernels(X, block_rows=bad)


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


# ---- the compiled pass against a plain numpy recursion ----------------------------------------
EPS = np.finfo(np.float64).eps


def _inner(X, Z, in_order):
    """x.z for all pairs: summed feature by feature in order (as the compiled pass does for
    d <= 64, so that proportional rows give exactly proportional sums), else by BLAS."""
    if not in_order:
        return np.matmul(X, Z.T)
    G = np.zeros((X.shape[0], Z.shape[0]))
    for k in range(X.shape[1]):
        G += np.multiply.outer(X[:, k], Z[:, k])
    return G


def numpy_recursion(arch, X, Z=None):
    """SPEC §2 on whole matrices with numpy, layer by layer (the layer objects' constants,
    the operations in the compiled pass's order). Returns (nngp, ntk)."""
    same = Z is None
    Z = X if same else Z
    d = X.shape[1]
    in_order = d <= 64
    cov = _inner(X, Z, in_order) / d
    if in_order:
        dx, dz = np.diag(_inner(X, X, True)) / d, np.diag(_inner(Z, Z, True)) / d
    else:
        dx, dz = np.einsum("ij,ij->i", X, X) / d, np.einsum("ij,ij->i", Z, Z) / d
    ntk = None
    for layer in arch.layers(d):
        if isinstance(layer, Dense):
            gv, g, b2 = layer.gain * layer.weight_var, layer.gain, layer.bias**2
            new_ntk = cov * g + b2
            if ntk is not None:
                new_ntk += gv * ntk
            cov, ntk = cov * gv + b2, new_ntk
            dx, dz = gv * dx + b2, gv * dz + b2
        else:
            norm = np.sqrt(np.outer(dx, dz))
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(norm > 0, cov / norm, 0.0)
            rho = np.clip(rho, -1.0, 1.0)
            if same:
                i = np.arange(len(rho))
                rho[i, i] = np.where(norm[i, i] > 0, 1.0, 0.0)
            theta = np.arccos(rho)
            sin = np.sqrt((1.0 - rho) * (1.0 + rho))
            cov = (rho * 0.5 + (sin - theta * rho) / (2 * np.pi)) * norm
            ntk = (np.pi - theta) / (2 * np.pi) * ntk
            dx, dz = dx / 2.0, dz / 2.0
    return cov, ntk


def _hard_rows(d, seed):
    """Random rows plus rows at cos exactly +-1 to others (x, -x, 2x, -x/2, a duplicate),
    another norm, and a zero row (variance 0 without biases)."""
    X = np.random.default_rng(seed).standard_normal((17, d))
    return np.vstack([X, -X[0], 2.0 * X[1], -0.5 * X[2], X[3], 3.0 * X[4], np.zeros(d)])


@pytest.mark.parametrize("d", [5, 80], ids=["in-order-sums", "blas"])
@pytest.mark.parametrize("parameterization", ["jacot", "arora", "paper"])
@pytest.mark.parametrize("sigmas", [(None, None), (1.3, 0.0), (0.7, 0.4)])
def test_compiled_pass_matches_numpy_recursion(d, parameterization, sigmas):
    """Depth 1-3, X vs X and X vs Z, to round-off: each entry within a few ulp of the
    reference (arccos differs from numpy's by < 1 ulp); entries that cancel to near 0
    (antipodal pairs without biases) within a few ulp of the matrix's largest entry."""
    sigma_w, sigma_b = sigmas
    if parameterization == "arora":
        sigma_w = None  # arora's sigma_w is sqrt(2); sigma_b still varies
    X = _hard_rows(d, seed=d)
    Z = np.vstack([X[10:], np.random.default_rng(1).standard_normal((5, d))])
    for depth in (1, 2, 3):
        arch = ntklab.Architecture(depth, parameterization, sigma_w=sigma_w, sigma_b=sigma_b)
        for other in (None, Z):
            got, ref = arch.kernels(X, other, block_rows=8), numpy_recursion(arch, X, other)
            for name, a, b in zip(("nngp", "ntk"), got, ref, strict=True):
                np.testing.assert_allclose(
                    a, b, rtol=1e-12, atol=16 * EPS * np.abs(b).max(), err_msg=f"{name} L={depth}"
                )


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_equal_and_proportional_inputs_keep_rho_exactly_one(depth):
    """A duplicate of a row in Z gets the diagonal's value exactly (rho = 1 at every layer,
    not 1 - eps, whose arccos would put an O(1e-8) relative error in the NTK); without
    biases the NTK is homogeneous, Theta(x, c x) = c Theta(x, x), exactly for c = 2, 1/2."""
    X = np.random.default_rng(7).standard_normal((6, 7))
    for parameterization in ("jacot", "paper", "arora"):
        arch = ntklab.Architecture(depth, parameterization)
        nngp, ntk = arch.kernels(X)
        dup = arch.kernels(X, X.copy())
        np.testing.assert_allclose(np.diag(dup[0]), np.diag(nngp), rtol=4 * EPS)
        np.testing.assert_allclose(np.diag(dup[1]), np.diag(ntk), rtol=4 * EPS)
    arora = ntklab.Architecture(depth, "arora")
    diag = np.diag(arora.ntk(X))
    for c in (2.0, 0.5):
        np.testing.assert_allclose(np.diag(arora.ntk(X, c * X)), c * diag, rtol=4 * EPS)


def test_one_compiled_signature_whatever_the_input_layout():
    """float64 C-contiguous only: Fortran order, float32, ints, views and read-only arrays
    compile nothing new."""
    from ntklab import _relu_jit

    arch = ntklab.Architecture(2, "paper")
    X = unit_rows(9, 4, seed=8)
    arch.kernels(X)
    arch.kernels(np.asfortranarray(X), X[::2].astype(np.float32))
    arch.kernels(
        np.arange(12).reshape(3, 4), np.random.default_rng(0).standard_normal((70, 80))[:, :4]
    )
    arch.kernels(np.random.default_rng(0).standard_normal((5, 70)))  # the BLAS path
    frozen = X.copy()
    frozen.flags.writeable = False  # as a study's data sets are
    arch.kernels(frozen)
    arch.kernels(X, frozen)
    assert len(_relu_jit.tile_pass.signatures) == 1


def test_threads_follow_torch():
    """numba's thread count for the call is the calling thread's torch count (capped by
    numba's pool), as the study runner sets torch's per worker."""
    import numba
    import torch

    arch = ntklab.Architecture(1, "paper")
    X = unit_rows(5, 3, seed=9)
    for threads in (1, 2):
        torch.set_num_threads(threads)  # restored by conftest's fixture
        arch.kernels(X)
        assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)


def test_acos_within_one_ulp():
    """The compiled pass's arccos against numpy's long double arccos (or numpy's double
    arccos, within 2 ulp, where long double is double), on random points and the edges."""
    from ntklab import _relu_jit

    rng = np.random.default_rng(10)
    x = np.concatenate(
        [
            rng.uniform(-1, 1, 2000),
            1 - np.logspace(-16, -0.3, 300),
            -1 + np.logspace(-16, -0.3, 300),
            np.logspace(-300, -1, 100) * rng.choice([-1, 1], 100),
            [-1.0, 1.0, 0.0, -0.0, 0.5, -0.5, np.nextafter(0.5, 1), np.nextafter(-0.5, -1)],
            [np.nextafter(1.0, 0), np.nextafter(-1.0, 0)],
        ]
    )
    got = np.array([_relu_jit.acos(v) for v in x])
    ulp = np.spacing(np.arccos(x))
    if np.finfo(np.longdouble).eps < EPS:
        exact = np.arccos(x.astype(np.longdouble))
        err = np.abs((got.astype(np.longdouble) - exact) / ulp.astype(np.longdouble))
        assert float(err.max()) < 1.0
    else:  # pragma: no cover - platforms where long double is double
        assert np.abs(got - np.arccos(x)).max() <= 2 * ulp.max()
    assert got[x == 1.0][0] == 0.0 and got[x == -1.0][0] == math.pi


def test_concurrent_calls_from_threads():
    """Dask runs trials in threads: parallel calls at once give each its own right answer."""
    from concurrent.futures import ThreadPoolExecutor

    archs = [ntklab.Architecture(d, p) for d in (1, 2) for p in ("jacot", "arora", "paper")]
    X = unit_rows(150, 6, seed=11)
    expected = [numpy_recursion(a, X) for a in archs]
    with ThreadPoolExecutor(len(archs)) as pool:
        got = list(pool.map(lambda a: a.kernels(X), archs * 2))
    for (a, b), ref in zip(got, expected * 2, strict=True):
        np.testing.assert_allclose(a, ref[0], rtol=1e-12, atol=16 * EPS * np.abs(ref[0]).max())
        np.testing.assert_allclose(b, ref[1], rtol=1e-12, atol=16 * EPS * np.abs(ref[1]).max())


@pytest.mark.parametrize("layer", ["workqueue", "omp"])
def test_calls_take_turns_only_on_numba_workqueue_layer(monkeypatch, layer):
    """numba's fallback threading layer (a machine without OpenMP or TBB) aborts the
    process on concurrent parallel calls: there calls take turns (one lock); on the others
    they run at once."""
    import threading

    import numba

    from ntklab import kernels

    arch = ntklab.Architecture(1, "paper")
    X = unit_rows(20, 3, seed=12)
    arch.kernels(X)  # the layer is known from here on
    monkeypatch.setattr(numba, "threading_layer", lambda: layer)
    done = threading.Event()
    with kernels._WORKQUEUE:  # as if another thread were computing a kernel
        worker = threading.Thread(target=lambda: (arch.kernels(X), done.set()))
        worker.start()
        assert done.wait(0.3 if layer == "workqueue" else 60) is (layer != "workqueue")
    worker.join(60)
    assert done.is_set()


class _FakePass:
    """A stand-in for the numba dispatcher: records when it compiled, and for how long."""

    def __init__(self, seconds: float = 0.0):
        self.signatures: list = []
        self.spans: list[tuple[float, float]] = []
        self.seconds = seconds

    def compile(self, signature):
        import time

        start = time.monotonic()
        time.sleep(self.seconds)
        self.spans.append((start, time.monotonic()))
        self.signatures.append(signature)


def test_one_process_compiles_the_pass_at_a_time(tmp_path, monkeypatch):
    """Processes (here threads: flock excludes each open file) that need the compiled pass at
    the same time compile it one after the other, the later ones loading numba's cache."""
    import threading

    from ntklab import kernels

    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(tmp_path))
    args = (np.zeros((2, 2)), 1.0, True, 3)
    fakes = [_FakePass(0.1) for _ in range(3)]
    threads = [threading.Thread(target=kernels._load_compiled, args=(f, args)) for f in fakes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted(s for f in fakes for s in f.spans)
    assert len(spans) == 3
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    import numba

    assert fakes[0].signatures[0] == (
        numba.typeof(args[0]), numba.float64, numba.boolean, numba.int64
    )  # fmt: skip
    kernels._load_compiled(fakes[0], args)  # already there: nothing more
    assert len(fakes[0].spans) == 1


def test_a_stopped_compiler_is_not_waited_for_forever(tmp_path, monkeypatch):
    import fcntl
    import os
    import time

    from ntklab import kernels

    monkeypatch.setattr(kernels.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(kernels, "_COMPILE_WAIT", 0.3)
    with open(tmp_path / f"ntklab-numba-{os.getuid()}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process holds it, and never lets go
        fake = _FakePass()
        start = time.monotonic()
        kernels._load_compiled(fake, (np.zeros((2, 2)),))
    assert len(fake.spans) == 1  # compiled after all,
    assert 0.3 <= fake.spans[0][0] - start < 5.0  # once the wait was over


def test_compiling_the_pass_leaves_torchs_threads_alone(monkeypatch):
    """Compiling (or loading) the pass can start numba's OpenMP pool, which on the libgomp
    torch shares sets torch's thread count to all cores: that must be undone as for a call
    (a fresh install's first kernel left each 1-thread pool worker training with all the
    cores: seed-quick's trials ran 5 times slower)."""
    import torch

    from ntklab import _relu_jit

    class OpenMPStart(_FakePass):
        def compile(self, signature):
            super().compile(signature)
            torch.set_num_threads(torch.get_num_threads() + 3)  # as numba's pool start does

        def __call__(self, *args):
            pass

    monkeypatch.setattr(_relu_jit, "tile_pass", OpenMPStart())
    before = torch.get_num_threads()
    ntklab.Architecture(2, "paper").kernels(unit_rows(5, 3, seed=0))
    assert _relu_jit.tile_pass.spans  # it did compile
    assert torch.get_num_threads() == before
