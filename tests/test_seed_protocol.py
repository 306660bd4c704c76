"""The seed's released protocol (SPEC §6) as config: uniform inputs, test fraction, published
generator and methods, holdout, SGD time matching with the paired network's f0, --only,
per-method trial caps, presets that extend presets."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ntklab
from ntklab.config import ConfigError, load_config, plan_study
from ntklab.data import fit_rows, n_test_from_fraction, sphere
from ntklab.predict import gradient_descent_mse
from ntklab.study import initial_outputs, make_data, methods_due, network_seed, run_trial, sgd_steps
from ntklab.training import train_ensemble

TINY_SEED = """
[study]
name = "tiny-seed"
trials = 3
seed = 11

[data]
n = 60
d = 5
test_fraction = 0.25
inputs = "uniform"
bounds = [-5.0, 7.0]

[data.generator]
kind = "published"
kernel = "NTKB1"

[[methods]]
name = "NN1"
kind = "network"
depth = 1
parameterization = "jacot"
sigma_w = 1.0
sigma_b = 1.0
width = 32
lr = 0.01
epochs = 3
batch_size = 4
holdout_fraction = 0.3
equivalence = false
trials = 2

[[methods]]
name = "GP1"
kind = "published"
kernel = "GP1"

[[methods]]
name = "K1"
kind = "published"
kernel = "K1"

[[methods]]
name = "NTK-NN1"
kind = "ntk"
network = "NN1"

[[methods]]
name = "NTK-NN1-fit"
kind = "ntk"
network = "NN1"
holdout_fraction = 0.3

[[methods]]
name = "NTK-NN1-T"
kind = "ntk_time"
network = "NN1"
f0 = "network"

[[methods]]
name = "NTK-NN1-Tmean"
kind = "ntk_time"
network = "NN1"
"""


def _raw():
    from ntklab.config import _read_toml

    return _read_toml(TINY_SEED, "tiny")


def _plan(**kw):
    return plan_study(_raw(), source="tiny", **kw)


def _rows(record):
    return {(m, k, s): v for (m, k, s, v) in record.rows if k != "fit_seconds"}


def _rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


# ---- data -------------------------------------------------------------------------------
def test_uniform_inputs_are_uniform_entries_scaled_to_unit_rows():
    X = sphere(500, 15, np.random.default_rng(0), inputs="uniform", bounds=(-5.0, 7.0))
    raw = np.random.default_rng(0).uniform(-5.0, 7.0, size=(500, 15))
    np.testing.assert_allclose(X, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-14)
    # mean 1 entries: rows cluster around the diagonal; off-diagonal cosines are far from 0
    cos = X @ X.T
    off = cos[~np.eye(500, dtype=bool)]
    assert off.mean() > 0.05  # SPEC §6 says about 1/13 of the spread... a normal draw gives ~0
    normal = sphere(500, 15, np.random.default_rng(0))
    assert abs((normal @ normal.T)[~np.eye(500, dtype=bool)].mean()) < 0.01


@pytest.mark.parametrize("bounds", [(7.0, -5.0), (1.0, 1.0)])
def test_uniform_bounds_must_be_increasing(bounds):
    with pytest.raises(ValueError, match="low bound must be below"):
        sphere(3, 2, np.random.default_rng(0), inputs="uniform", bounds=bounds)


def test_test_fraction_and_holdout_rows_follow_spec_section_6():
    assert n_test_from_fraction(1000, 0.33) == 330
    train = np.arange(670) * 3
    fit = fit_rows(train, 0.3)
    assert fit.shape == (469,) and np.array_equal(fit, train[:469])  # the *first* 70 %
    assert fit_rows(train, None) is train and fit_rows(train, 0.0) is train
    assert sgd_steps(3000, 8, 469) == 3000 * 59 == 177_000
    assert sgd_steps(6000, 8, 469) == 354_000
    assert sgd_steps(10, None, 469) == 10 and sgd_steps(10, 469, 469) == 10


# ---- config ---------------------------------------------------------------------------
def test_kernel_methods_take_their_settings_from_their_network():
    cfg = _plan().config
    nn = cfg.method("NN1")
    assert cfg.data.n_train == 45
    for name in ("NTK-NN1", "NTK-NN1-fit", "NTK-NN1-T", "NTK-NN1-Tmean"):
        m = cfg.method(name)
        assert m.architecture() == nn.architecture()
    t = cfg.method("NTK-NN1-T")
    assert (t.lr, t.epochs, t.batch_size, t.holdout_fraction, t.width) == (0.01, 3, 4, 0.3, 32)
    assert t.f0 == "network" and cfg.method("NTK-NN1-Tmean").f0 is None
    assert cfg.method("NTK-NN1").holdout_fraction is None  # only the architecture is taken
    # an override of the network moves its kernel methods with it
    raw = _raw()
    from ntklab.config import apply_override

    apply_override(raw, "methods.NN1.epochs", 9)
    assert plan_study(raw).config.method("NTK-NN1-T").epochs == 9


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda r: r["data"].update(bounds=[7.0, -5.0]),
            "data: bounds = [7.0, -5.0]: the low bound",
        ),
        (lambda r: r["data"].update(inputs="normal"), "bounds apply to inputs = 'uniform' only"),
        (
            lambda r: r["data"]["generator"].update(normalization="sqrt"),
            "data.generator.normalization: input should be 'published' or 'corrected'",
        ),
        (
            lambda r: r["methods"][0].update(holdout_fraction=1.0),
            "holdout_fraction: input should be less than 1",
        ),
        (
            lambda r: r["methods"][0].update(holdout_fraction=-0.1),
            "holdout_fraction: input should be greater than or equal to 0",
        ),
        (lambda r: r["methods"][5].update(epochs=7), "epochs = 7 but network 'NN1' has epochs = 3"),
        (
            lambda r: r["methods"][5].update(network="GP1"),
            "names no network method; network methods: NN1",
        ),
        (lambda r: r["methods"][1].update(length_scale=2.0), "apply to kernel 'K1' only"),
        (lambda r: r["methods"][1].update(kernel="GP3"), "kernel: input should be"),
        (lambda r: r["data"].update(n_train=40), "n_train = 40 and test_fraction = 0.25 disagree"),
        (lambda r: r["data"].update(noise=math.inf), "noise"),
    ],
)
def test_bad_seed_protocol_configs_give_one_line(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ConfigError) as err:
        plan_study(raw, source="tiny")
    text = str(err.value)
    assert "\n" not in text and message in text, text


def test_only_keeps_the_named_methods_and_validates_names():
    plan = _plan(only=["NTK-NN1-T", "GP1"])
    assert [m.name for m in plan.config.methods] == ["GP1", "NTK-NN1-T"]
    assert plan.only == ("NTK-NN1-T", "GP1")
    assert plan.default_dir == "tiny-seed-only-NTK-NN1-T+GP1"
    assert plan.config_hash != _plan().config_hash
    with pytest.raises(ConfigError, match="has no method named 'NN9'; did you mean 'NN1'"):
        _plan(only=["NN9"])


def test_per_method_trial_caps():
    cfg = _plan().config
    assert "NN1" in [m.name for m in methods_due(cfg, 1)]
    assert "NN1" not in [m.name for m in methods_due(cfg, 2)]
    assert [m.name for m in methods_due(cfg, 2, ["GP1", "NN1"])] == ["GP1"]


# ---- one trial --------------------------------------------------------------------------
def test_trial_of_the_seed_protocol_matches_direct_computation():
    cfg = _plan().config
    rec = run_trial(cfg, trial=1)
    assert rec.status == "done" and not rec.errors, rec.errors
    rows = _rows(rec)
    ctx, _ = make_data(cfg, 1)
    d = ctx.data
    assert len(d.train) == 45 and len(d.test) == 15
    fit = d.train[:32]  # 45 - floor(0.3 * 45) = 45 - 13
    assert np.array_equal(ctx.fit(0.3), fit)
    # the generator is the published NTKB1 formula: the cached matrix is exactly it
    from ntklab.published import PublishedKernel, published_kernel

    K_gen = published_kernel("NTKB1", d.X, normalization="published")
    np.testing.assert_array_equal(ctx.cache[("published", PublishedKernel("NTKB1"))], K_gen)
    arch = cfg.method("NN1").architecture()
    ntk = arch.ntk(d.X)

    def krr(K, rows):
        a = np.linalg.solve(K[np.ix_(rows, rows)], d.y[rows])
        return _rmse(K[np.ix_(d.test, rows)] @ a, d.y_test)

    np.testing.assert_allclose(
        rows[("GP1", "rmse", -1)], krr(published_kernel("GP1", d.X), d.train), rtol=1e-8
    )
    np.testing.assert_allclose(rows[("NTK-NN1", "rmse", -1)], krr(ntk, d.train), rtol=1e-8)
    np.testing.assert_allclose(rows[("NTK-NN1-fit", "rmse", -1)], krr(ntk, fit), rtol=1e-8)
    assert rows[("NTK-NN1-fit", "rmse", -1)] != rows[("NTK-NN1", "rmse", -1)]
    # SGD time matching: T = epochs * ceil(32 / 4) = 24 steps, same lr, f0 = 0 for the mean
    steps = 3 * 8
    assert rows[("NTK-NN1-Tmean", "steps", -1)] == steps
    _, f_mean = gradient_descent_mse(
        ntk[np.ix_(fit, fit)], ntk[np.ix_(d.test, fit)], d.y[fit], lr=0.01, steps=steps
    )
    np.testing.assert_allclose(
        rows[("NTK-NN1-Tmean", "rmse", -1)], _rmse(f_mean, d.y_test), rtol=1e-9
    )
    # ... and f0 of the very network NN1 trains in this trial
    (res,) = train_ensemble(
        arch, 32, d.X[fit], d.y[fit], seeds=[network_seed(11, 1, "NN1")], lr=0.01, epochs=0,
        device="cpu",
    )  # fmt: skip
    f0_fit, f0_test = initial_outputs(
        cfg.method("NTK-NN1-T"), ctx, study_seed=11, trial=1, device="cpu"
    )
    np.testing.assert_array_equal(f0_fit, res.initial_predict(d.X[fit]))
    np.testing.assert_array_equal(f0_test, res.initial_predict(d.X_test))
    _, f_t = gradient_descent_mse(
        ntk[np.ix_(fit, fit)], ntk[np.ix_(d.test, fit)], d.y[fit], lr=0.01, steps=steps,
        f0_train=f0_fit, f0_test=f0_test,
    )  # fmt: skip
    np.testing.assert_allclose(rows[("NTK-NN1-T", "rmse", -1)], _rmse(f_t, d.y_test), rtol=1e-9)
    assert abs(rows[("NTK-NN1-T", "rmse", -1)] - rows[("NTK-NN1-Tmean", "rmse", -1)]) > 1e-6
    # the network fitted 32 rows: its train RMSE is on those
    assert ("NN1", "rmse", -1) in rows and ("NN1", "train_rmse", -1) in rows


def test_only_run_gives_the_full_runs_numbers():
    full = _rows(run_trial(_plan().config, trial=0))
    part = _rows(run_trial(_plan(only=["NTK-NN1-T", "K1"]).config, trial=0))
    assert {k[0] for k in part} == {"NTK-NN1-T", "K1"}
    for key, value in part.items():
        assert value == full[key], key


def test_capped_method_does_not_run_past_its_trials():
    rec = run_trial(_plan().config, trial=2)
    assert "NN1" not in {r[0] for r in rec.rows} and "GP1" in {r[0] for r in rec.rows}


# ---- presets ------------------------------------------------------------------------------
SEED_ROWS = ["NN1", "NN2", "GP1", "GP2", "NTKA1", "NTKA2", "NTKB1", "NTKB2", "NTKJ1", "NTKJ2", "K1"]
ATTRIBUTION = [f"NTK-NN{k}{s}" for k in (1, 2) for s in ("", "-469", "-T", "-Tmean")]


def test_seed_preset_is_spec_section_6():
    plan = load_config("seed")
    cfg = plan.config
    names = [m.name for m in cfg.methods]
    assert set(SEED_ROWS + ATTRIBUTION) <= set(names)
    assert plan.trials == 50 and cfg.data.n_train == 670 and cfg.data.n == 1000
    assert cfg.data.inputs == "uniform" and cfg.data.bounds == [-5.0, 7.0]
    gen = cfg.data.generator
    assert (gen.kind, gen.kernel, gen.normalization) == ("published", "NTKB1", "published")
    for k, epochs in ((1, 3000), (2, 6000)):
        nn = cfg.method(f"NN{k}")
        assert (nn.parameterization, nn.sigma_w, nn.sigma_b, nn.width) == ("jacot", 1.0, 1.0, 10000)
        assert (nn.lr, nn.batch_size, nn.epochs, nn.holdout_fraction) == (0.002, 8, epochs, 0.3)
        for suffix in ("", "-469", "-T", "-Tmean"):
            assert cfg.method(f"NTK-NN{k}{suffix}").architecture() == nn.architecture()
        assert cfg.method(f"NTK-NN{k}-T").f0 == "network"
        assert cfg.method(f"NTK-NN{k}-469").holdout_fraction == 0.3
    k1 = cfg.method("K1")
    assert (k1.amplitude, k1.length_scale) == (2.0, 6.0)
    assert plan.assumed == {}


def test_seed_corrected_changes_only_the_normalization():
    seed, corrected = load_config("seed").config, load_config("seed-corrected").config
    assert corrected.data.generator.normalization == "corrected"
    for a, b in zip(seed.methods, corrected.methods, strict=True):
        assert a.name == b.name
        if a.kind == "published":
            assert b.normalization == "corrected"
        else:
            assert a.spec() == b.spec()


def test_seed_quick_states_its_reductions():
    plan = load_config("seed-quick")
    cfg = plan.config
    names = [m.name for m in cfg.methods]
    assert set(SEED_ROWS + ATTRIBUTION) <= set(names)
    lines = plan.reductions
    assert lines, "seed-quick must differ from seed somewhere"
    seed = load_config("seed").config
    for m in cfg.methods:  # every kernel and NTK row keeps >= 50 trials
        if m.kind != "network":
            assert (m.trials or plan.trials) >= 50
        ref = seed.method(m.name)
        for key in ("width", "epochs", "lr", "batch_size"):
            if getattr(m, key) != getattr(ref, key):
                assert any(line.startswith(f"methods.{m.name}.{key}:") for line in lines), key
        if (m.trials or plan.trials) != (ref.trials or seed.study.trials):
            assert f"methods.{m.name}.trials: 50 -> {m.trials}" in lines


def test_extends_merges_and_applies_set(tmp_path):
    child = tmp_path / "child.toml"
    child.write_text('extends = "seed"\n[study]\nname = "child"\n[set]\n"methods.NN1.width" = 64\n')
    cfg = load_config(str(child)).config
    assert cfg.study.name == "child" and cfg.study.trials == 50
    assert cfg.method("NN1").width == 64 and cfg.method("NTK-NN1-T").width == 64
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop.toml"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_config(str(loop))


def test_published_formulas_are_importable_from_the_package():
    assert ntklab.published_kernel is not None and ntklab.PublishedKernel is not None


def test_config_sigma_w1_names_the_network_of_a_corrected_formula():
    raw = _raw()
    raw["methods"].append(
        {"name": "NTKB1-net", "kind": "ntk", "depth": 1, "parameterization": "paper",
         "sigma_w": math.sqrt(2.0), "sigma_b": 1.0, "sigma_w1": 1.0}
    )  # fmt: skip
    m = plan_study(raw).config.method("NTKB1-net")
    X = sphere(20, 15, np.random.default_rng(5), inputs="uniform")
    from ntklab.published import published_kernel

    np.testing.assert_allclose(
        m.architecture().ntk(X), published_kernel("NTKB1", X, normalization="corrected"), rtol=1e-12
    )
    assert not np.allclose(
        m.architecture().ntk(X), published_kernel("NTKB1", X, normalization="published"), rtol=1e-3
    )


# ---- the command line ---------------------------------------------------------------------
def _cli(*args):
    from click.testing import CliRunner

    from ntklab.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _config_file(tmp_path):
    """The tiny seed config as a file."""
    path = tmp_path / "tiny-seed.toml"
    path.write_text(TINY_SEED)
    return path


def test_cli_only_runs_a_subset_into_its_own_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config_file(tmp_path)
    res = _cli("run", config, "--only", "GP1,NTK-NN1-Tmean", "--trials", "2", "--workers", "1")
    assert res.exit_code == 0, res.output
    out = tmp_path / "runs" / "tiny-seed-only-GP1+NTK-NN1-Tmean"
    assert (out / "results.sqlite").is_file()
    assert "only: GP1, NTK-NN1-Tmean" in res.output
    from ntklab.report import load_run

    run = load_run(out)
    assert set(run.method_names) == {"GP1", "NTK-NN1-Tmean"}
    assert run.final("rmse").notna().all().all() and len(run.final("rmse")) == 2
    # the same numbers as one trial of the full config
    full = _rows(run_trial(_plan().config, trial=1))
    assert run.final("rmse").loc[(0, 1), "GP1"] == full[("GP1", "rmse", -1)]
    # a full run may not be written into the --only directory, nor the reverse
    res = _cli("run", config, "--out", out, "--trials", "1", "--workers", "1")
    assert res.exit_code == 2
    assert "holds an --only run of tiny-seed" in res.output and "\n" not in res.output.strip()
    full_dir = tmp_path / "full"
    res = _cli("run", config, "--only", "K1", "--trials", "1", "--out", full_dir, "--workers", "1")
    assert res.exit_code == 0, res.output
    res = _cli("run", config, "--only", "GP1", "--trials", "1", "--out", full_dir, "--workers", "1")
    assert res.exit_code == 2 and "different config" in res.output


def test_cli_only_refuses_into_a_full_run_and_unknown_names(tmp_path):
    config = _config_file(tmp_path)
    small = tmp_path / "small.toml"
    small.write_text(
        TINY_SEED.split("[[methods]]")[0]
        + '[[methods]]\nname = "GP1"\nkind = "published"\nkernel = "GP1"\n'
        + '[[methods]]\nname = "K1"\nkind = "published"\nkernel = "K1"\n'
    )
    out = tmp_path / "full"
    res = _cli("run", small, "--out", out, "--trials", "1", "--workers", "1")
    assert res.exit_code == 0, res.output
    res = _cli("run", small, "--only", "K1", "--out", out, "--trials", "1", "--workers", "1")
    assert res.exit_code == 2
    assert (
        "holds a full run of tiny-seed; an --only run needs a run directory of its own"
        in res.output
    )
    res = _cli("run", config, "--only", "NN9", "--workers", "1")
    assert res.exit_code == 2 and "has no method named 'NN9'" in res.output
    res = _cli("run", config, "--only", " , ", "--workers", "1")
    assert res.exit_code == 2 and "--only takes method names" in res.output
