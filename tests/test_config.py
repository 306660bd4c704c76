"""Study configs: presets, validation errors (one line, key path, closest key), sweeps, --set."""

from __future__ import annotations

import re

import pytest

from ntklab.config import (
    ConfigError,
    StudyPlan,
    apply_override,
    list_presets,
    load_config,
    parse_override,
    plan_study,
    preset_names,
)

PAPER_METHODS = [
    "NN1",
    "NN2",
    "GP1",
    "GP2",
    "NTKA1",
    "NTKA2",
    "NTKJ1",
    "NTKJ2",
    "NTKB1",
    "NTKB2",
    "K1",
]


def _raw(**extra):
    raw = {
        "study": {"name": "t", "trials": 2, "seed": 1},
        "data": {"n": 30, "d": 3, "n_train": 20},
        "methods": [
            {
                "name": "NN1",
                "kind": "network",
                "depth": 1,
                "parameterization": "paper",
                "width": 8,
                "epochs": 3,
            },
            {"name": "GP1", "kind": "nngp", "depth": 1, "parameterization": "jacot"},
            {"name": "K1", "kind": "laplacian"},
        ],
    }
    raw.update(extra)
    return raw


@pytest.mark.parametrize(
    "name",
    ["paper", "paper-quick", "equivalence", "real-data-ridgeless", "real-data", "real-data-full"],
)
def test_every_preset_loads_and_validates(name):
    plan = load_config(name)
    assert isinstance(plan, StudyPlan)
    assert plan.name == name
    assert plan.config.study.description
    # the resolved config re-validates to the same config (workers rebuild it from the dict)
    for point in plan.points:
        again = plan_study(point.config.model_dump(exclude_none=True)).config
        assert again == point.config
    assert "data.n_train" in plan.assumed or plan.config.data.folds


def test_preset_list_matches_files():
    rows = list_presets()
    assert [r["name"] for r in rows] == preset_names()
    assert {"paper", "paper-quick", "equivalence", "real-data"} <= set(preset_names())


@pytest.mark.parametrize("name", ["paper", "paper-quick", "real-data-ridgeless"])
def test_paper_presets_have_the_seeds_methods(name):
    plan = load_config(name)
    methods = plan.config.methods
    assert [m.name for m in methods] == PAPER_METHODS
    fam = {m.name: (m.family, m.depth, m.kind) for m in methods}
    assert fam["NN2"] == ("NN", 2, "network")
    assert fam["GP1"] == ("GP", 1, "nngp")
    assert fam["NTKA2"] == ("NTKA", 2, "ntk")
    assert fam["NTKJ1"] == ("NTKJ", 1, "ntk")
    assert fam["NTKB2"] == ("NTKB", 2, "ntk")
    assert fam["K1"] == ("K1", None, "laplacian")
    assert plan.config.method("NTKJ2").label == "NTKJ (2 layers)"
    assert plan.config.method("NN1").parameterization == "paper"
    # assumed values are set in the preset and reported
    for key in (
        "methods.NN1.width",
        "methods.NN1.lr",
        "methods.NN2.epochs",
        "methods.K1.length_scale",
        "methods.NN1.parameterization",
        "methods.GP1.sigma_w",
        "methods.NTKB1.sigma_b",
    ):
        assert key in plan.assumed, key


def test_a_published_generator_alone_does_not_make_a_run_the_seeds_protocol():
    # the seed's presets state every value (SPEC section 6); a study that only draws its data
    # from a published formula (the phase grid) still lists its own chosen values
    assert load_config("seed").assumed == {}
    assumed = load_config("phase-quick").assumed
    assert "data.n_train" in assumed and "data.generator.kernel" not in assumed
    assert any(k.endswith(".width") for k in assumed)


def test_paper_matches_spec_section_4():
    cfg = load_config("paper").config
    assert (cfg.data.n, cfg.data.d, cfg.data.n_train, cfg.study.trials) == (1000, 15, 800, 50)
    gen = cfg.data.generator
    assert (gen.kind, gen.depth, gen.parameterization) == ("ntk", 1, "paper")
    assert (cfg.method("NN1").epochs, cfg.method("NN2").epochs) == (3000, 6000)
    assert cfg.method("NN1").width == 1024
    quick = load_config("paper-quick").config
    assert quick.study.trials < cfg.study.trials
    assert quick.method("NN2").width < cfg.method("NN2").width
    assert quick.method("NN2").epochs < cfg.method("NN2").epochs


def test_equivalence_preset_sweeps_width_over_three_parameterizations():
    plan = load_config("equivalence")
    widths = [p.params["methods.*.width"] for p in plan.points]
    assert widths == [128, 512, 2048]
    for point in plan.points:
        nets = [m for m in point.config.methods if m.kind == "network"]
        assert {m.parameterization for m in nets} == {"jacot", "arora", "paper"}
        assert {m.width for m in nets} == {point.params["methods.*.width"]}
        kernels = [m for m in point.config.methods if m.kind != "network"]
        assert all(m.width is None for m in kernels)


def test_real_data_preset_uses_diabetes():
    cfg = load_config("real-data-ridgeless").config
    assert cfg.data.dataset == "diabetes"
    assert cfg.data.generator is None


def test_defaults_are_resolved():
    plan = plan_study(_raw())
    nn = plan.config.method("NN1")
    assert nn.lr == "auto" and nn.centered is False and nn.record_every == 1
    assert nn.sigma_w == 1.0 and nn.sigma_b == 0.1  # the `paper` defaults, made explicit
    assert plan.config.method("K1").length_scale == 1.0
    assert plan.config.method("GP1").ridge == 0.0
    gen = plan.config.data.generator
    assert (gen.kind, gen.depth, gen.parameterization) == ("ntk", 1, "paper")
    assert plan.points[0].params == {}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda r: r["methods"][0].update(widht=4),
            "unknown key 'widht' in methods[0] (NN1); did you mean 'width'?",
        ),
        (lambda r: r["data"].update(n_trian=4), "did you mean 'n_train'?"),
        (
            lambda r: r.update(studdy={}),
            "unknown key 'studdy' in the top level; did you mean 'study'?",
        ),
        (
            lambda r: r["data"].update(n="many"),
            "data.n: input should be a valid integer (got 'many')",
        ),
        (lambda r: r["data"].update(n_train=30), "n_train = 30 must be smaller than n = 30"),
        (
            lambda r: r["methods"][1].update(depth=0),
            "methods[1] (GP1).depth: input should be greater than or equal to 1",
        ),
        (lambda r: r["methods"][0].update(lr=-0.1), "lr must be a positive number or 'auto'"),
        (lambda r: r["methods"][0].update(lr="fast"), "lr must be a positive number or 'auto'"),
        (
            lambda r: r["methods"][0].update(width=0),
            "methods[0] (NN1).width: input should be greater than or equal to 1",
        ),
        (
            lambda r: r["methods"][2].update(kind="polynomial"),
            "methods[2] (K1).kind: input should be 'network'",
        ),
        (lambda r: r["methods"][1].update(width=3), "width does not apply to kind 'nngp'"),
        (lambda r: r["methods"][0].pop("epochs"), "epochs is required for kind 'network'"),
        (lambda r: r["methods"][1].pop("parameterization"), "parameterization is required"),
        (
            lambda r: r["methods"][1].update(name="NN1"),
            "method names must be unique; repeated: NN1",
        ),
        (
            lambda r: r["methods"][0].update(centered="yes"),
            "centered: input should be a valid boolean",
        ),
        (
            lambda r: r["study"].update(trials=0),
            "study.trials: input should be greater than or equal to 1",
        ),
        (
            lambda r: r["data"].update(noise=-1.0),
            "data.noise: input should be greater than or equal to 0",
        ),
        (
            lambda r: (
                r["data"]["generator"].update(kind="network")
                if "generator" in r["data"]
                else r["data"].update(generator={"kind": "network"})
            ),
            "data.generator.kind: input should be 'ntk'",
        ),
        (
            lambda r: r["data"].update(generator={"kind": "laplacian", "depth": 2}),
            "depth does not apply to kind 'laplacian'",
        ),
        (lambda r: r.update(methods=[]), "methods: list should have at least 1 item"),
        (
            lambda r: r["data"].update(dataset="mnist"),
            "data.dataset: input should be 'simulated', 'diabetes', 'linnerud'",
        ),
        (
            lambda r: r.update(data={"dataset": "diabetes", "n_train": 500}),
            "n_train = 500 must be smaller than n = 442",
        ),
        (lambda r: r.update(sweep={"methods.NN1.width": []}), "empty list"),
        (
            lambda r: r.update(sweep={"methods.NN1.width": [8, 0]}),
            'sweep point {"methods.NN1.width": 0}',
        ),
        (lambda r: r.update(sweep={"methods.NN7.width": [8]}), "no method named 'NN7'"),
        (
            lambda r: r.update(sweep={"methods.*.length_scale": ["x"]}),
            "length_scale: input should be a valid number",
        ),
        (lambda r: r.update(sweep={"study.seed": [1, 2]}), "must start with 'data.' or 'methods.'"),
        (
            lambda r: r.update(report={"phase_measure": "rmse"}),
            "report.phase_measure: input should be 'nn_elin_rel' or 'nn_lin_rel'",
        ),
    ],
)
def test_bad_configs_give_one_line_naming_the_key(mutate, expected):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        plan_study(raw, source="t.toml")
    assert str(info.value).startswith("t.toml") and "\n" not in str(info.value)


def test_sweep_is_a_cartesian_product_and_nested_tables_are_dotted_paths():
    dotted = plan_study(_raw(sweep={"methods.NN1.width": [8, 16], "data.noise": [0.0, 0.1, 0.2]}))
    nested = plan_study(
        _raw(sweep={"methods": {"NN1": {"width": [8, 16]}}, "data": {"noise": [0.0, 0.1, 0.2]}})
    )
    assert [p.params for p in dotted.points] == [p.params for p in nested.points]
    assert len(dotted.points) == 6
    assert [(p.config.method("NN1").width, p.config.data.noise) for p in dotted.points] == [
        (8, 0.0), (8, 0.1), (8, 0.2), (16, 0.0), (16, 0.1), (16, 0.2)
    ]  # fmt: skip
    assert [p.index for p in dotted.points] == list(range(6))


def test_sweep_star_applies_to_every_method_with_the_field():
    raw = _raw()
    raw["methods"].append(
        {
            "name": "NN2",
            "kind": "network",
            "depth": 2,
            "parameterization": "jacot",
            "width": 4,
            "epochs": 2,
        }
    )
    plan = plan_study({**raw, "sweep": {"methods.*.width": [32]}})
    cfg = plan.points[0].config
    assert cfg.method("NN1").width == 32 and cfg.method("NN2").width == 32
    assert cfg.method("GP1").width is None


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("study.trials=5", "study.trials", 5),
        ("methods.NN1.lr=0.25", "methods.NN1.lr", 0.25),
        ('methods.NN1.lr="auto"', "methods.NN1.lr", "auto"),
        ("methods.NN1.lr=auto", "methods.NN1.lr", "auto"),
        ("methods.NN1.centered=true", "methods.NN1.centered", True),
        ("sweep.methods.*.width=[1, 2]", "sweep.methods.*.width", [1, 2]),
        (" data.n = 40 ", "data.n", 40),
    ],
)
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text", ["study.trials", "=3", "study..trials=3", "data.n=", "data.n=[1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_overrides_reach_the_config():
    raw = _raw()
    apply_override(raw, "methods.*.epochs", 9)
    apply_override(raw, "data.generator.depth", 2)
    apply_override(raw, "sweep.methods.NN1.width", [4, 5])
    plan = plan_study(raw)
    assert plan.config.method("NN1").epochs == 9
    assert plan.config.data.generator.depth == 2
    assert [p.config.method("NN1").width for p in plan.points] == [4, 5]
    with pytest.raises(ConfigError, match="no method accepts 'epochs'"):
        apply_override({"methods": [{"name": "K1", "kind": "laplacian"}]}, "methods.*.epochs", 3)
    with pytest.raises(ConfigError, match="methods.NAME.FIELD"):
        apply_override(raw, "methods.NN1", 3)


def test_config_hash_ignores_trials_but_not_settings():
    base = load_config("paper-quick")
    assert load_config("paper-quick", trials=3).config_hash == base.config_hash
    assert load_config("paper-quick", trials=3).trials == 3
    changed = load_config("paper-quick", overrides=["methods.NN1.width=128"])
    assert changed.config_hash != base.config_hash
    # an explicit default is the same config as an omitted one
    explicit = load_config("paper-quick", overrides=["methods.GP1.ridge=0.0"])
    assert explicit.config_hash == base.config_hash


def test_unknown_preset_missing_file_and_toml_syntax(tmp_path):
    with pytest.raises(
        ConfigError, match=r"unknown preset 'papr'; did you mean 'paper'\? available presets: "
    ):
        load_config("papr")
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_config(str(tmp_path / "nope.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\ntrials = \n')
    with pytest.raises(ConfigError, match=r"TOML syntax error: .*line 3"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="--trials"):
        load_config("paper-quick", trials=0)
