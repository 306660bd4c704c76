"""The phase diagram report on synthetic stores: grid detection from the sweep, cells with
divergence counted, drift exponents, crossovers, verdicts on the anchor claims, figures and
the report formats.

The runs are written with the store's own writer (``RunStore.create`` + ``write_trial``), as
``ntklab run`` writes them, from laws with known exponents and seeded log-normal noise.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from ntklab.report import load_run
from ntklab.report.phase import (
    phase_axis,
    phase_grid,
)
from ntklab.store import RunStore, TrialRecord

WIDTHS = [64, 256, 1024, 4096]
ALPHAS = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
MULTIPLES = [0.3, 0.9, 1.5, 2.5]
PARAMS = ["jacot", "mup"]
DEPTHS = [1, 2]
N_TRIALS = 3
#: Theory the synthetic runs follow: drift and nn_lin_rel ∝ width^EXPONENT / alpha (× C).
EXPONENT = {"jacot": -0.5, "mup": 0.0}
NOISE = 0.05  # sd of the per-trial log noise
K_REL = 0.5  # nn_lin_rel = K_REL width^b / alpha: crossover alpha* = K_REL / (thr sqrt n)


def _name(prefix: str, value: float) -> str:
    return f"{prefix}{value:g}".replace(".", "_")


def _network(name: str, family: str, **fields) -> dict:
    spec = {"kind": "network", "family": family, "depth": 1, "parameterization": "jacot",
            "width": 256, "epochs": 10, **fields}  # fmt: skip
    return {"method": name, "kind": "network", "family": family, "depth": None,
            "parameterization": None, "label": name, "spec": spec}  # fmt: skip


def write_phase_run(
    path: Path,
    *,
    exponents: dict[str, float] = EXPONENT,
    seed: int = 0,
    report: dict | None = None,
    layout: str = "methods",
) -> Path:
    """A phase grid over parameterization x depth x width (the sweep) with, in every point,
    one network per lazy scale (family NN-alpha, lr "x0.5") and per lr multiple (family
    NN-lr), as the phase presets lay it out (``layout="methods"``); or one network ``NN``
    whose lr multiple is swept (``layout="swept-lr"``, parameterization x lr x width, depth 1).
    ``N_TRIALS`` trials. Divergence: lr 2.5 x critical diverges in trial 0 of every cell; mup
    at the smallest lazy scale and width 64 in trials 0 and 1 (``diverged = 1``, NaN measures).
    """
    rng = np.random.default_rng(seed)
    kernel = {"method": "K1", "kind": "laplacian", "family": "K1", "depth": None,
              "parameterization": None, "label": "K1", "spec": {}}  # fmt: skip
    if layout == "methods":
        keys = ["methods.*.parameterization", "methods.*.depth", "methods.*.width"]
        grid = list(itertools.product(PARAMS, DEPTHS, WIDTHS))
        nets = {_name("alpha-", a): ("lazy_scale", a) for a in ALPHAS}
        nets |= {_name("lr-x", c): ("lr", c) for c in MULTIPLES}
        methods = [
            _network(m, "NN-alpha", lazy_scale=v, lr="x0.5")
            if f == "lazy_scale"
            else _network(m, "NN-lr", lr=f"x{v:g}")
            for m, (f, v) in nets.items()
        ]
    else:
        keys = ["methods.NN.parameterization", "methods.NN.lr", "methods.NN.width"]
        grid = list(itertools.product(PARAMS, [f"x{c:g}" for c in MULTIPLES], WIDTHS))
        methods = [_network("NN", "NN")]
    points = [dict(zip(keys, v, strict=True)) for v in grid]
    meta = {"name": "phase-test", "n_trials": N_TRIALS, "versions": {}, "assumed": {}}
    trial_noise = rng.normal(0.0, NOISE, size=(len(points), N_TRIALS))  # shared along the axis
    with RunStore.create(
        path,
        config={"data": {"n": 200}, "report": report or {}},
        config_hash="h",
        meta=meta,
        points=points,
        methods=[*methods, kernel],
    ) as store:
        for p, params in enumerate(points):
            param, width = params[keys[0]], params[keys[2]]
            if layout == "methods":
                cells = list(nets.items())
            else:
                cells = [("NN", ("lr", float(params[keys[1]][1:])))]
            for t in range(N_TRIALS):
                rec = TrialRecord(point=p, trial=t, seed=f"{p}-{t}")
                rec.add("K1", "rmse", 0.1)
                for method, (field, v) in cells:
                    law = width ** exponents[param] * (1 / v if field == "lazy_scale" else v)
                    diverged = (field == "lr" and v == MULTIPLES[-1] and t == 0) or (
                        param == "mup" and v == ALPHAS[0] and width == WIDTHS[0] and t < 2
                    )
                    eps = trial_noise[p, t]
                    drift = 2.0 * law * math.exp(eps + rng.normal(0.0, NOISE))
                    rel = K_REL * law * math.exp(eps)
                    rec.add(method, "rmse", math.nan if diverged else 0.2)
                    rec.add(method, "kernel_drift", math.nan if diverged else drift)
                    rec.add(method, "nn_lin_rel", math.nan if diverged else rel)
                    rec.add(method, "diverged", float(diverged))
                store.write_trial(rec)
    return path


@pytest.fixture(scope="module")
def phase_dir(tmp_path_factory) -> Path:
    return write_phase_run(tmp_path_factory.mktemp("phase") / "run")


@pytest.fixture(scope="module")
def phase_run(phase_dir):
    return load_run(phase_dir)


def test_grid_found_from_the_sweep_and_the_methods(phase_run):
    assert phase_axis(phase_run) == ["lazy_scale", "lr_multiple"]
    grid = phase_grid(phase_run)
    n_points = len(PARAMS) * len(DEPTHS) * len(WIDTHS)
    assert len(grid) == n_points * (len(ALPHAS) + len(MULTIPLES)) * N_TRIALS  # K1 is no network
    assert set(grid["parameterization"]) == set(PARAMS) and set(grid["depth"]) == set(DEPTHS)
    by_axis = grid.groupby("axis")["x"].unique()
    assert sorted(by_axis["lazy_scale"]) == ALPHAS and sorted(by_axis["lr_multiple"]) == MULTIPLES
    assert set(grid.groupby("axis")["group"].unique().map(tuple)) == {("NN-alpha",), ("NN-lr",)}
