r"""Verdicts on the phase diagram's three anchor claims, and the report's phase sections.

The claims (theory a phase grid tests, :mod:`ntklab.report.phase`):

1. in NTK parameterization (``jacot``, ``arora``, ``paper``) the kernel drift falls like
   :math:`\text{width}^{-1/2}` (Jacot et al. 2018; Lee et al. 2019);
2. in μP (``mup``) the kernel drift does not fall with width, :math:`\text{width}^{0}`
   (Yang & Hu 2021);
3. in NTK parameterization the lazy/rich crossover -- the lazy-scale :math:`\alpha^*` where
   the phase measure (:func:`~ntklab.report.phase.phase_measure`, default ``nn_elin_rel``)
   reaches the threshold -- scales like :math:`\alpha^* \sim 1/\sqrt{\text{width}}`
   (Geiger et al. 2019).

How a verdict is decided (as for the seed's claims, :mod:`ntklab.report.verdicts`)
--------------------------------------------------------------------------------
Each claim has *components*: one fitted exponent :math:`b` (with its regression standard
error and df) per panel (network, parameterization, depth, other swept fields) and, for
claims 1–2, per axis value. The statement is :math:`|b - b_{theory}| < m` (``m`` =
``phase_exponent_margin``), tested by two one-sided t-tests (TOST); its opposite by the
test that :math:`b` lies outside the band.

* ``reproduced``: every deciding component's statement is shown at level :math:`\alpha`
  (intersection-union test, no adjustment needed; Berger & Hsu 1996);
* ``not reproduced``: the opposite is shown for at least one deciding component after
  Holm's adjustment across the claim's deciding components;
* ``cannot tell``: neither, or nothing to judge.

Which components decide: the theory of claims 1 and 3 is that of the lazy (NTK) regime,
so for claim 1 an axis value decides only where the network is lazy at every width of the
fit (mean phase measure below the threshold in every cell, none diverged); for claims 1–2 an
lr multiple at or above the critical rate (C ≥ 1: catapult or divergence) never decides.
The other components are shown as ``context``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .findings import claims_table_finding
from .phase import (
    crossover_exponents,
    crossovers,
    drift_exponents,
    panel_columns,
    phase_cells,
    phase_grid,
    phase_measure,
    phase_settings,
)
from .runs import Run
from .stats import claim_decision, tost

__all__ = [
    "PHASE_CLAIMS",
    "THEORY_EXPONENT",
    "NTK_PARAMETERIZATIONS",
    "phase_verdicts",
    "phase_details",
    "exponent_table",
    "phase_sections",
]

#: The parameterizations whose NTK has a fixed infinite-width limit with the 1/√n scaling.
NTK_PARAMETERIZATIONS = ("jacot", "arora", "paper")

#: Exponent of kernel drift against width that theory predicts, per parameterization.
THEORY_EXPONENT: dict[str, float] = {**dict.fromkeys(NTK_PARAMETERIZATIONS, -0.5), "mup": 0.0}

#: The anchor claims: short name -> what theory says.
PHASE_CLAIMS: dict[str, str] = {
    "drift ∝ width^−1/2 (NTK param.)": "in NTK parameterization the empirical NTK's relative "
    "change during training falls like width^−1/2 (Jacot et al. 2018; Lee et al. 2019)",
    "drift ∝ width^0 (μP)": "in the maximal-update parameterization the NTK moves by O(1) "
    "at every width: drift ∝ width^0 (Yang & Hu 2021)",
    "crossover α* ∝ width^−1/2": "the lazy/feature crossover lies at α* ~ 1/√width "
    "(Geiger et al. 2019), here where the phase measure (report.phase_measure) reaches the "
    "threshold",
}
_CLAIM1, _CLAIM2, _CLAIM3 = PHASE_CLAIMS

_DETAIL_COLUMNS = ["claim", "comparison", "n", "estimate", "ci_low", "ci_high", "theory",
                   "p_claim", "p_against", "p_against_holm", "role"]  # fmt: skip


def _label(row: dict[str, Any], keys: list[str]) -> str:
    parts = []
    for k in keys:
        v = row.get(k)
        if k == "axis":
            continue
        if k == "x":
            parts.append(f"{row.get('axis')} {v:g}")
        elif k == "depth" and v is not None and np.isfinite(v):
            parts.append(f"depth {int(v)}")
        elif k in ("group", "method", "parameterization"):
            parts.append(str(v))
        else:
            parts.append(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}")
    return " · ".join(parts)


def _lazy_everywhere(cells: pd.DataFrame, panel: list[str], thr: float, measure: str) -> set:
    """(panel values..., axis value) where every width's cell is lazy: mean ``measure`` below
    ``thr`` and no trial diverged."""
    out = set()
    for key, grp in cells.groupby([*panel, "x"], sort=False, dropna=False):
        rel = grp[measure].to_numpy(float)
        if np.all(np.isfinite(rel) & (rel < thr)) and not (grp["diverged"] > 0).any():
            out.add(key if isinstance(key, tuple) else (key,))
    return out


def exponent_table(run: Run, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`~ntklab.report.phase.drift_exponents` with ``theory`` (the exponent theory
    predicts for the parameterization, NaN if none) and ``role`` (``decides`` /
    ``context: ...``) for claims 1 and 2 (module docstring)."""
    grid = phase_grid(run) if grid is None else grid
    thr = phase_settings(run)["phase_threshold"]
    panel = panel_columns(grid)
    table = drift_exponents(run, grid)
    lazy = _lazy_everywhere(phase_cells(run, grid), panel, thr, phase_measure(run)[0])
    theory, role = [], []
    for row in table.to_dict("records"):
        param = row.get("parameterization")
        b = THEORY_EXPONENT.get(str(param), math.nan)
        theory.append(b)
        key = tuple(row[k] for k in [*panel, "x"])
        if not np.isfinite(b):
            role.append("context: no theory")
        elif row["n_widths"] < 2 and row["diverged"]:
            role.append("context: fewer than 2 widths that converged")
        elif row["n_widths"] < 2:
            role.append("context: fewer than 2 widths")
        elif row["axis"] == "lr_multiple" and row["x"] >= 1:
            role.append("context: lr ≥ critical")
        elif param in NTK_PARAMETERIZATIONS and key not in lazy:
            role.append("context: not lazy at every width")
        else:
            role.append("decides")
    return table.assign(theory=theory, role=role)


def _components(table: pd.DataFrame, claim: str, keys: list[str], margin: float,
                alpha: float) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for row in table.to_dict("records"):
        target = row["theory"]
        t = tost(row["exponent"] - target, row["se"], row["df"], -margin, margin, alpha=alpha)
        out.append(
            {"claim": claim, "comparison": _label(row, keys), "n": row["n"],
             "estimate": row["exponent"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
             "theory": target, "p_claim": t["p_tost"], "p_against": t["p_beyond"],
             "p_against_holm": math.nan, "role": row["role"]}
        )  # fmt: skip
    return out


def _decide(comps: list[dict[str, Any]], alpha: float) -> tuple[str, str]:
    deciding = [c for c in comps if c["role"] == "decides"]
    if not deciding:
        roles = pd.Series([c["role"].removeprefix("context: ") for c in comps]).value_counts()
        why = ", ".join(f"{k} ({v})" for k, v in roles.items())
        return "cannot tell", "no fit decides" + (f": {why}" if why else "")
    verdict = claim_decision(deciding, alpha)
    if verdict is not None:
        return verdict, ""
    return "cannot tell", "the intervals do not decide"


def _summary(comps: list[dict[str, Any]], margin: float) -> str:
    parts = []
    for role in ("decides", "context"):
        sel = [c for c in comps if c["role"].startswith(role) and np.isfinite(c["estimate"])]
        if not sel:
            continue
        est = np.array([c["estimate"] for c in sel])
        lows = np.array([c["ci_low"] for c in sel], dtype=float)
        highs = np.array([c["ci_high"] for c in sel], dtype=float)
        ok = np.isfinite(lows) & np.isfinite(highs)
        lo = float(lows[ok].min()) if ok.any() else math.nan
        hi = float(highs[ok].max()) if ok.any() else math.nan
        ci = f" (95 % CIs within [{lo:+.2f}, {hi:+.2f}])" if np.isfinite(lo) else ""
        what = "deciding" if role == "decides" else "context"
        rng = f"{est.min():+.2f} … {est.max():+.2f}" if len(sel) > 1 else f"{est[0]:+.2f}"
        parts.append(f"{what}: {len(sel)} fit(s), exponent {rng}{ci}")
    theory = comps[0]["theory"] if comps else math.nan
    band = [f"theory {theory:+g} ± {margin:g}"] if np.isfinite(theory) else []
    return "; ".join(band + parts)


def _evaluate(run: Run) -> list[tuple[str, str, str, list[dict[str, Any]]]]:
    s = phase_settings(run)
    margin, alpha = s["phase_exponent_margin"], s["alpha"]
    grid = phase_grid(run)
    panel = panel_columns(grid)
    table = exponent_table(run, grid)
    keys = [*panel, "x"]
    out = []
    for claim, params in ((_CLAIM1, NTK_PARAMETERIZATIONS), (_CLAIM2, ("mup",))):
        sel = table[table["parameterization"].isin(params)]
        comps = _components(sel, claim, keys, margin, alpha)
        verdict, why = _decide(comps, alpha)
        if not comps:
            why = f"no {' / '.join(params)} network in the grid"
        text = _summary(comps, margin) if comps else ""
        out.append((claim, verdict, "; ".join(t for t in (why, text) if t), comps))
    if "lazy_scale" not in set(grid["axis"]):
        why = "needs a lazy_scale (α) sweep; this grid sweeps the learning rate"
        out.append((_CLAIM3, "cannot tell", why, []))
        return out
    cross = crossover_exponents(run, crossovers(run, grid))
    cross = cross[
        cross["parameterization"].isin(NTK_PARAMETERIZATIONS) & (cross["axis"] == "lazy_scale")
    ]
    cross = cross.assign(
        theory=-0.5,
        role=[
            "decides" if n >= 2 else "context: fewer than 2 widths with a crossover"
            for n in cross["n_widths"]
        ],
    )
    comps = _components(cross, _CLAIM3, panel, margin, alpha)
    verdict, why = _decide(comps, alpha)
    if not comps:
        why = "no NTK-parameterization network in the grid"
    text = _summary(comps, margin) if comps else ""
    censored = int(cross["censored"].sum()) if len(cross) else 0
    if censored:
        text += f"; {censored} trial curve(s) without a crossover inside the grid left out"
    out.append((_CLAIM3, verdict, "; ".join(t for t in (why, text) if t), comps))
    return out


def phase_verdicts(run: Run) -> pd.DataFrame:
    """One row per anchor claim: ``claim, verdict, numbers, theory`` (module docstring)."""
    rows = [
        {"claim": c, "verdict": v, "numbers": n, "theory": PHASE_CLAIMS[c]}
        for c, v, n, _ in _evaluate(run)
    ]
    return pd.DataFrame(rows, columns=["claim", "verdict", "numbers", "theory"])


def phase_details(run: Run) -> pd.DataFrame:
    """Every fitted exponent behind :func:`phase_verdicts`: ``claim, comparison, n,
    estimate, ci_low, ci_high`` (95 %), ``theory``, ``p_claim`` (TOST of the band),
    ``p_against``, ``p_against_holm`` (the exponent outside the band), ``role``."""
    rows = [c for *_, comps in _evaluate(run) for c in comps]
    return pd.DataFrame(rows, columns=_DETAIL_COLUMNS)


def _divergence_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per panel: cells, trials, diverged trials and where (axis value, width: k/n)."""
    panel = panel_columns(cells)
    rows = []
    for key, grp in cells.groupby(panel, sort=False, dropna=False):
        row = dict(zip(panel, key if isinstance(key, tuple) else (key,), strict=True))
        div = grp[grp["diverged"] > 0]
        sym = {"lazy_scale": "α", "lr_multiple": "C"}.get(row.get("axis"), "lr")
        where = "; ".join(
            f"{sym} = {x:g}, width {w:g}: {d}/{n}"
            for x, w, d, n in zip(div["x"], div["width"], div["diverged"], div["n"], strict=True)
        )
        row.update(cells=len(grp), trials=int(grp["n"].sum()), diverged=int(grp["diverged"].sum()),
                   where=where or "–")  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def phase_sections(run: Run) -> list[dict[str, Any]]:
    """The phase diagram's report sections, as keyword arguments of
    :class:`~ntklab.report.sections.Section` (``key, title, table, notes, intro, display``)."""
    s = phase_settings(run)
    thr, margin, alpha = s["phase_threshold"], s["phase_exponent_margin"], s["alpha"]
    grid = phase_grid(run)
    measure, fallback = phase_measure(run)
    axes = ", ".join(dict.fromkeys(grid["axis"]))
    verdicts = phase_verdicts(run)
    rule = (
        f"Each claim is judged by fitted exponents: statement |b − theory| < {margin:g} "
        f"(report.phase_exponent_margin) by two one-sided t-tests at α = {alpha:g}; reproduced: "
        "shown for every deciding fit (intersection-union test); not reproduced: b outside the "
        "band shown for at least one deciding fit, Holm-adjusted across the claim's deciding "
        "fits; cannot tell: neither. Claim 1 is judged where the network is lazy at every width "
        f"(mean {measure} < {thr:g}, none diverged); lr multiples ≥ 1 never decide; other fits "
        "are context."
    )
    sections = [
        {"key": "phase_verdicts", "title": "Where the NTK stops describing the network: anchor "
         "claims", "table": verdicts, "display": verdicts.drop(columns="theory"),
         "notes": [f"Theory ({c}): {w}." for c, w in PHASE_CLAIMS.items()] + [rule],
         "intro": (f"{fallback}\n\n" if fallback else "") + f"Threshold {thr:g} on "
         f"{measure} (report.phase_threshold, report.phase_measure), margin {margin:g} on "
         f"exponents, α = {alpha:g}; laziness axes: {axes}.",
         "findings": [f for f in (claims_table_finding(
             verdicts, f"The phase diagram's {len(verdicts)} anchor claims"),) if f]},
    ]  # fmt: skip
    exps = exponent_table(run, grid)
    sections.append(
        {"key": "phase_exponents", "title": "Fitted exponent of kernel drift against width",
         "table": exps, "display": None, "intro": "",
         "notes": ["exponent b of kernel_drift ∝ width^b: least squares of log drift on log "
                   "width over every finished trial with a finite value (trials as replicates), "
                   "95 % t interval from the regression's standard error (df = n − 2); "
                   "diverged: trials that diverged (no drift; counted, not fitted); theory: "
                   "−1/2 in NTK parameterization, 0 in μP; role: whether the fit decides its "
                   "claim."]}
    )  # fmt: skip
    if np.isfinite(grid[measure].to_numpy(float)).any():
        cross = crossover_exponents(run, crossovers(run, grid))
        sections.append(
            {"key": "phase_crossover", "title": f"Lazy/rich crossover: the axis value where "
             f"{measure} reaches {thr:g}", "table": cross, "display": None, "intro": "",
             "notes": [f"Per trial and width, the axis value where {measure} reaches the "
                       "threshold coming from the lazy end, interpolated in log–log between "
                       "grid values (a diverged cell counts as above it: geometric midpoint); "
                       "crossover_by_width: geometric mean over trials; exponent: least "
                       "squares of log crossover on log width, trials as replicates, 95 % t "
                       "interval; censored: trials without a crossover inside the grid."]}
        )  # fmt: skip
    cells = phase_cells(run, grid)
    sections.append(
        {"key": "phase_cells", "title": "Phase grid: trials and divergence per panel",
         "table": cells, "display": _divergence_summary(cells), "intro": "",
         "notes": [f"{int(cells['diverged'].sum())} of {int(cells['n'].sum())} network trials "
                   "diverged; where: the cells (α or C = lr multiple, width) with diverged trials / "
                   "trials. Cell means cover the trials that converged; the heatmaps mark the "
                   "cells with divergence. The CSV output has every cell (mean ± SE)."]}
    )  # fmt: skip
    details = phase_details(run)
    if len(details):
        sections.append(
            {"key": "phase_details", "title": "The fits behind the phase verdicts",
             "table": details, "display": None, "intro": "", "notes": [rule]}
        )  # fmt: skip
    return sections
