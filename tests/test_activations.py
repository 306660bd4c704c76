"""Activations beyond ReLU: closed forms, the Gauss–Hermite rule and its error, the numpy
recursion against the compiled ReLU pass, Monte-Carlo checks against each activation's own
finite networks (with negative controls), and bad input.

Monte-Carlo tolerance as in test_monte_carlo.py and :mod:`ntklab.verify`: relative Frobenius
error <= 4 x its propagated standard error + 2 (L - 1) / width; the negative control (the
kernel of another activation, :data:`ntklab.verify.CONTROLS`) must exceed the same bound.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import unit_rows

import ntklab
from ntklab.activation_kernels import activation_network_kernels
from ntklab.activations import (
    ABReLU,
    Erf,
    QuadratureActivation,
    activation_layer,
    parse_activation,
)
from ntklab.empirical import monte_carlo_kernels
from ntklab.kernels import relu_network_kernels
from ntklab.layers import Dense
from ntklab.verify import ALL_ACTIVATIONS, CONTROLS, relative_error, threshold

PARAMS = ("jacot", "arora", "paper")
NON_RELU = tuple(a for a in ALL_ACTIVATIONS if a != "relu")


def _dense(arch, d):
    return [layer.kernel_coefficients for layer in arch.layers(d) if isinstance(layer, Dense)]


# ---- the recursion ---------------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", PARAMS)
def test_relu_through_the_numpy_recursion_equals_the_compiled_pass(parameterization):
    """abrelu(0, 1) is ReLU: the numpy block recursion gives the compiled pass's numbers."""
    X, Z = unit_rows(13, 5, seed=1) * 1.7, unit_rows(7, 5, seed=2)
    for depth in (1, 2, 3):
        dense = _dense(ntklab.Architecture(depth, parameterization), 5)
        for ZZ in (None, Z):
            ref = relu_network_kernels(X, ZZ, dense)
            got = activation_network_kernels(X, ZZ, dense, ABReLU(0.0, 1.0), block_rows=3)
            for r, g in zip(ref, got, strict=True):
                np.testing.assert_allclose(g, r, rtol=1e-13, atol=1e-15)


def test_block_size_and_threads_do_not_change_the_result():
    X = unit_rows(20, 4, seed=3)
    arch = ntklab.Architecture(3, "arora", activation="gelu")
    dense, layer = _dense(arch, 4), arch.layers(4)[1]
    ref = activation_network_kernels(X, None, dense, layer, block_rows=20, threads=1)
    for rows, threads in ((1, 1), (3, 2), (7, 3)):
        got = activation_network_kernels(X, None, dense, layer, block_rows=rows, threads=threads)
        for r, g in zip(ref, got, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-14, atol=1e-16)
            assert np.array_equal(g, g.T)


def test_relu_stays_the_compiled_layer():
    arch = ntklab.Architecture(2, "jacot")
    assert arch.activation == "relu" and type(arch.layers(3)[1]).__name__ == "ReLU"
    assert ntklab.Architecture(2, "jacot", activation="relu") == arch


# ---- closed forms and quadrature -------------------------------------------------------------
def _gaussian_pairs(var_x, cov, var_z, n, seed):
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(np.array([[var_x, cov], [cov, var_z]]))
    return rng.standard_normal((n, 2)) @ L.T


@pytest.mark.parametrize("layer", [Erf(), ABReLU(-0.5, 1.0), ABReLU(0.3, -2.0), ABReLU(0.01, 1.0)])
def test_closed_forms_against_sampled_gaussian_pairs(layer):
    """E[phi(u)phi(v)] and E[phi'(u)phi'(v)] against 200 000 Gaussian pairs, within 4.5 SE."""
    module = layer.module()
    for var_x, cov, var_z in ((1.0, 0.3, 0.5), (2.0, -1.2, 1.5), (0.4, 0.39, 0.4)):
        uv = torch.as_tensor(_gaussian_pairs(var_x, cov, var_z, 200_000, seed=4))
        got = layer.moments(np.array([[cov]]), np.array([var_x]), np.array([var_z]))
        for k, f in enumerate((module, module.derivative)):
            prod = (f(uv[:, 0]) * f(uv[:, 1])).numpy()
            se = prod.std() / np.sqrt(prod.size)
            assert abs(got[k][0, 0] - prod.mean()) <= 4.5 * se + 1e-12, (k, var_x, cov, var_z)


def test_identity_and_absolute_value_are_exact():
    """abrelu(1, 1) is the identity: E[uv] = cov, E[1] = 1; abrelu(-1, 1) = |u| has
    E[phi'(u)phi'(v)] = E[sign(u) sign(v)] = (2/pi) arcsin(rho)."""
    var_x, var_z = np.array([0.7, 2.0]), np.array([1.1, 0.3, 4.0])
    cov = np.array([[0.2, -0.4, 1.5], [1.4, 0.1, -2.0]])
    e, de = ABReLU(1.0, 1.0).moments(cov, var_x, var_z)
    np.testing.assert_allclose(e, cov, rtol=1e-14)
    np.testing.assert_allclose(de, 1.0, rtol=1e-15)
    _, de = ABReLU(-1.0, 1.0).moments(cov, var_x, var_z)
    rho = cov / np.sqrt(np.outer(var_x, var_z))
    np.testing.assert_allclose(de, 2 / np.pi * np.arcsin(rho), rtol=1e-13, atol=1e-15)


@pytest.mark.filterwarnings("ignore:relu. the Gauss-Hermite series")
@pytest.mark.parametrize("parameterization", PARAMS)
def test_quadrature_reproduces_the_closed_forms(parameterization):
    """erf and relu through the same quadrature code as gelu/tanh/softplus/silu: erf within
    its truncation bound, relu (not smooth: slow convergence) ever closer as q grows."""
    X, Z = unit_rows(9, 4, seed=5), unit_rows(6, 4, seed=6)
    for depth in (1, 3):
        arch = ntklab.Architecture(depth, parameterization, activation="erf")
        dense = _dense(arch, 4)
        exact = arch.kernels(X, Z)
        got = activation_network_kernels(X, Z, dense, QuadratureActivation("erf", 32))
        for e, g in zip(exact, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-6)
        relu = ntklab.Architecture(depth, parameterization).kernels(X, Z)
        errors = []
        for q in (8, 32, 128):
            got = activation_network_kernels(X, Z, dense, QuadratureActivation("relu", q))
            errors.append(
                max(np.max(np.abs(g - r) / np.abs(r).max()) for g, r in zip(got, relu, strict=True))
            )
        # ReLU's phi' is a step: its Hermite tail decays slowly (error ~ q^-1/2), and the
        # truncation bound warns about it
        assert errors[0] > 1.5 * errors[1] > 2.25 * errors[2] and errors[2] < 0.015, errors


@pytest.mark.parametrize("name", ["gelu", "tanh", "softplus", "silu", "erf"])
def test_error_estimate_bounds_the_error(name):
    """The rows' truncation tails estimate the error against a rule of 4x the degree (the
    truncation alone is within sqrt(t_x t_z); with the coefficients' own quadrature error,
    within 3 max(t_x, t_z)), and at unit variance the default degree is accurate to better
    than 1e-5."""
    layer, fine = QuadratureActivation(name, 24), QuadratureActivation(name, 96)
    var = np.array([0.1, 1.0, 3.0])
    rho = np.linspace(-1, 1, 21)
    _, _, tail, dtail = layer.coefficients(var)
    for i, vx in enumerate(var):
        for j, vz in enumerate(var):
            cov = np.sqrt(vx * vz) * rho[None, :]
            a, b = np.full(1, vx), np.full(rho.size, vz)
            with (
                pytest.warns(UserWarning)
                if max(tail[i], tail[j], dtail[i], dtail[j]) > 1e-4
                else _none()
            ):
                ours = layer.moments(cov, a, b)
            ref = fine.moments(cov, a, b)
            for k, t in ((0, tail), (1, dtail)):
                scale = np.sqrt(fine.second_moments(a)[k][0] * fine.second_moments(b)[k][0])
                bound = 3 * max(t[i], t[j]) * scale
                assert np.max(np.abs(ours[k] - ref[k])) <= bound + 1e-13 * scale
    assert QuadratureActivation(name).error_estimate(1.0) < 1e-5
    assert QuadratureActivation(name).quadrature_error(variances=(0.25, 1.0)) < 1e-5


class _none:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ---- Monte Carlo against the activations' own networks ----------------------------------------
WIDTH, SAMPLES = 128, 200
FAST = [("erf", "arora", 2), ("leaky_relu", "paper", 1), ("abrelu(-0.5, 1)", "jacot", 2),
        ("gelu", "paper", 2), ("tanh", "jacot", 1), ("softplus", "arora", 1),
        ("silu", "jacot", 2)]  # fmt: skip
GRID = [(a, p, d) for a in NON_RELU for p in PARAMS for d in (1, 2, 3)]


def _check_monte_carlo(activation, parameterization, depth):
    X = ntklab.data.project_to_sphere(np.random.default_rng(0).standard_normal((6, 4)))
    arch = ntklab.Architecture(depth, parameterization, activation=activation)
    est = monte_carlo_kernels(
        arch, X, width=WIDTH, n_samples=SAMPLES, seed=depth, nngp_estimator="last_hidden",
        device="cpu",
    )  # fmt: skip
    control = CONTROLS[parse_activation(activation)[0]]
    wrong = ntklab.Architecture(depth, parameterization, activation=control).kernels(X)
    for kind, analytic, bad in zip(("nngp", "ntk"), arch.kernels(X), wrong, strict=True):
        rel, mc = relative_error(est[kind], analytic)
        tol = threshold(mc, depth, WIDTH)
        assert mc < 0.05, f"{kind}: Monte-Carlo error {mc:.3g} too large to discriminate"
        assert rel <= tol, f"{kind}: relative error {rel:.4f} > tolerance {tol:.4f}"
        rel_bad, _ = relative_error(est[kind], bad)
        assert rel_bad > tol, f"negative control {control} ({kind}) passed: {rel_bad:.4f}"


@pytest.mark.parametrize("activation,parameterization,depth", FAST)
def test_monte_carlo_every_activation(activation, parameterization, depth):
    _check_monte_carlo(activation, parameterization, depth)


@pytest.mark.slow
@pytest.mark.parametrize(
    "activation,parameterization,depth", [g for g in GRID if g not in FAST]
)  # fmt: skip
def test_monte_carlo_grid(activation, parameterization, depth):
    _check_monte_carlo(activation, parameterization, depth)


def test_networks_use_their_activation():
    X = unit_rows(5, 3, seed=7)
    for spec in NON_RELU:
        arch = ntklab.Architecture(1, "jacot", activation=spec)
        net = arch.network(8, seed=0, in_features=3, device="cpu", dtype=torch.float64)
        act = net.layers[1]
        h = net.layers[0](torch.as_tensor(X))
        expect = net.layers[2](act(h)).squeeze(-1)
        np.testing.assert_allclose(net(torch.as_tensor(X)).detach(), expect.detach())
        # its derivative is the autograd derivative of its forward
        hh = torch.linspace(-3, 3, 41, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(act(hh).sum(), hh)
        np.testing.assert_allclose(act.derivative(hh.detach()), grad, rtol=1e-10, atol=1e-12)
        # a network pickles (torch.save) with its activation
        buffer = io.BytesIO()
        torch.save(net, buffer)
        buffer.seek(0)
        back = torch.load(buffer, weights_only=False)
        assert torch.equal(back(torch.as_tensor(X)), net(torch.as_tensor(X)))


def test_verify_rows_for_activations():
    rows = ntklab.verify.verify(
        width=64, n_samples=40, depths=[1], parameterizations=["jacot"],
        activations=["tanh", "abrelu(-0.5, 1)"],
    )  # fmt: skip
    assert [(r.activation, r.kernel, r.control) for r in rows] == [
        ("tanh", "nngp", "erf"), ("tanh", "ntk", "erf"),
        ("abrelu(-0.5, 1)", "nngp", "relu"), ("abrelu(-0.5, 1)", "ntk", "relu"),
    ]  # fmt: skip
    assert all(r.passed and r.control_rejected for r in rows)


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"activation": "tahn"}, "activation must be one of relu, erf, leaky_relu"),
        ({"activation": "abrelu"}, "write abrelu(a, b)"),
        ({"activation": "leaky_relu(a)"}, "its parameters must be numbers"),
        ({"activation": "gelu", "quadrature_degree": 3}, "quadrature_degree must be between 4"),
        ({"activation": "gelu", "quadrature_degree": 2.5}, "quadrature_degree must be an integer"),
        ({"activation": "erf", "quadrature_degree": 16}, "erf has a closed form"),
        ({"quadrature_degree": 16}, "relu has a closed form"),
    ],
)
def test_bad_activation_one_line(kwargs, message):
    with pytest.raises(ValueError, match=None) as info:
        ntklab.Architecture(1, "jacot", **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_canonical_names_and_degree():
    assert ntklab.Architecture(1, "jacot", activation="leaky_relu").activation == "leaky_relu(0.01)"
    arch = ntklab.Architecture(1, "jacot", activation=" abrelu( -.5 ,1 ) ")
    assert arch.activation == "abrelu(-0.5, 1)" and arch.quadrature_degree is None
    assert ntklab.Architecture(1, "jacot", activation="tanh").quadrature_degree == 32
    assert activation_layer("silu", 8).degree == 8
    assert ntklab.Architecture(2, "paper", activation="tanh").name == "NTKB2-tanh"
    assert ntklab.Architecture(2, "paper").name == "NTKB2"


def test_config_fields(tmp_path):
    from ntklab.config.schema import ConfigError, validate

    def raw(**method):
        return {
            "study": {"name": "t"},
            "data": {"n": 20, "d": 3, "n_train": 10},
            "methods": [{"name": "A", "kind": "ntk", "depth": 1, "parameterization": "jacot",
                         **method}],
        }  # fmt: skip

    m = validate(raw(activation="tanh"), "cfg").methods[0]
    assert m.activation == "tanh" and m.quadrature_degree == 32
    assert m.architecture() == ntklab.Architecture(1, "jacot", activation="tanh")
    assert "tanh" in m.label
    assert validate(raw(), "cfg").methods[0].architecture().activation == "relu"
    for bad, message in (
        ({"activation": "tahn"}, "activation must be one of"),
        ({"activation": "tanh", "quadrature_degree": 3}, "quadrature_degree must be between 4"),
    ):
        with pytest.raises(ConfigError, match=message) as info:
            validate(raw(**bad), "cfg")
        assert "\n" not in str(info.value)


def test_structured_empirical_ntk_of_every_activation():
    """The structured empirical NTK (the layer formula, back-propagating through phi') equals
    the generic torch.func Jacobians for every activation's network, in float64."""
    from ntklab.empirical import empirical_ntk

    X, Z = unit_rows(6, 3, seed=8), unit_rows(4, 3, seed=9)
    for spec in NON_RELU:
        arch = ntklab.Architecture(2, "paper", activation=spec)
        net = arch.network(16, seed=1, in_features=3, device="cpu", dtype=torch.float64)
        for ZZ in (None, Z):
            fast = empirical_ntk(net, X, ZZ, method="structured")
            slow = empirical_ntk(net, X, ZZ, method="generic")
            np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)


def test_verify_cli_activations():
    from click.testing import CliRunner

    from ntklab.cli import main

    args = ["verify", "--width", "64", "--samples", "60", "--depths", "1"]
    args += ["--parameterizations", "jacot", "--activations", "tanh,abrelu(-0.5, 1)"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("PASS") == 4 and result.output.count("rejected") == 4
    assert "abrelu(-0.5, 1)" in result.output and "4/4 rows pass" in result.output
    bad = CliRunner().invoke(main, ["verify", "--activations", "tahn"])
    assert bad.exit_code == 2 and "activation must be one of" in bad.output
    assert "Traceback" not in bad.output and len(bad.output.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["gelu", "tanh", "softplus", "silu"])
def test_one_variance_fast_path_equals_the_general_series(name):
    """Rows of one norm take the scalar-coefficient path; one row of another norm added
    sends the same pairs through the general series: the same numbers to 1e-13."""
    X, Z = unit_rows(9, 4, seed=10), unit_rows(5, 4, seed=11)
    other = np.full((1, 4), 0.6)  # norm 1.2
    for depth in (1, 3):
        arch = ntklab.Architecture(depth, "arora", activation=name)
        fast = arch.kernels(X, Z)
        general = arch.kernels(np.vstack([X, other]), Z)
        for f, g in zip(fast, general, strict=True):
            np.testing.assert_allclose(f, g[:-1], rtol=1e-13, atol=1e-15)
        fast, general = arch.kernels(X), arch.kernels(np.vstack([X, other]))
        for f, g in zip(fast, general, strict=True):
            np.testing.assert_allclose(f, g[:-1, :-1], rtol=1e-13, atol=1e-15)


def test_canonical_name_reads_back_exactly():
    arch = ntklab.Architecture(1, "jacot", activation="abrelu(0.123456789012, -3)")
    assert arch.activation == "abrelu(0.123456789012, -3)"
    again = ntklab.Architecture(1, "jacot", activation=arch.activation)
    assert again == arch and again.layers(2)[1] == arch.layers(2)[1]
