r"""Verdicts on the seed's claims of its §4.2.

* :func:`seed_verdicts` -- one line per claim (NN ≈ 3× NTK; GP ≈ NTK; K1 nearer to NN than
  any NTK; the 1 → 2 layer changes do not match): ``reproduced``, ``not reproduced`` or
  ``cannot tell``, with the numbers; :func:`verdict_details` gives every comparison behind
  them; :func:`evaluate_claims` the :class:`Verdict` objects themselves.

How a verdict is decided
------------------------
Each claim is split into *components* (one comparison each: NN1 / NTKJ1, GP2 − NTKB2, ...),
each with a test of the claim's statement and a test of its opposite, on the trials all its
methods have (paired):

* ``reproduced``: every component's statement is shown at level :math:`\alpha` -- an
  intersection-union test, which needs no multiplicity adjustment (Berger & Hsu 1996);
* ``not reproduced``: the opposite is shown for at least one component, Holm-adjusted across
  the claim's components;
* ``cannot tell``: neither (too few trials for the intervals to decide), or the methods of
  every component are missing.

Components whose methods are missing are listed and left out; a verdict on the components
present says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .attribution import common_columns, log_shares, present_methods, same_time_reading
from .equivalence import tost_table
from .reference import SEED_DEPTHS, SEED_NTK_FAMILIES, SEED_TABLE, same_time_pair
from .render import format_estimate_ci
from .runs import Run, report_settings
from .stats import claim_decision, log_mean_contrast, paired_t, t_side, tost

__all__ = [
    "RATIO_TOLERANCE",
    "CLAIMS",
    "Verdict",
    "seed_verdicts",
    "verdict_details",
    "verdict_frame",
    "evaluate_claims",
]

#: "Almost three times": our NN/NTK ratio reproduces the seed's when it lies within a factor
#: 1 + RATIO_TOLERANCE of the seed's own ratio (TOST on the log of the ratio).
RATIO_TOLERANCE = 0.25

#: The seed's four claims of its §4.2: short name -> its words.
CLAIMS: dict[str, str] = {
    "NN ≈ 3× NTK": "NN1 and NN2 have almost three times the mean RMSE of the corresponding NTKs",
    "GP ≈ NTK": "the performances of GP1 and GP2 are very close to the performance of NTKB "
    "and NTKJ variants",
    "K1 nearer to NN than any NTK": "the mean RMSE of the Laplacian kernel is closer to that "
    "of the neural networks than any of the NTKs",
    "1 → 2 layer changes do not match": "the neural network gained performance with an "
    "additional layer [...] None of the NTK variants we tested came close to matching the "
    "percentage change in mean RMSE of the NN",
}

_COMPONENT_COLUMNS = ["point", "claim", "comparison", "n", "estimate", "ci_low", "ci_high",
                      "seed", "statement", "p_claim", "p_against", "p_against_holm", "role"]  # fmt: skip


@dataclass
class Verdict:
    """One claim of the seed, judged on one sweep point of a run."""

    point: int
    claim: str
    verdict: str
    numbers: str
    components: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def seed_says(self) -> str:
        return CLAIMS[self.claim]


def _fmt_ci(est: float, lo: float, hi: float, sign: bool = False) -> str:
    return format_estimate_ci(est, lo, hi, sign=sign)


def _decide(components: list[dict[str, Any]], alpha: float) -> tuple[str, str]:
    """The verdict from the deciding components (module docstring); fills p_against_holm."""
    deciding = [c for c in components if c["role"] == "decides"]
    if not deciding:
        return "cannot tell (missing methods)", ""
    verdict = claim_decision(deciding, alpha)
    if verdict is not None:
        return verdict, ""
    few = any(c["n"] < 2 for c in deciding)
    why = "fewer than 2 paired trials" if few else "the intervals do not decide"
    return "cannot tell (too few trials)", why


def _exp_fields(c: dict[str, float]) -> dict[str, float]:
    """``n, estimate, ci_low, ci_high`` of a log contrast, back on the ratio scale."""
    out = {"n": c["n"]}
    for key in ("estimate", "ci_low", "ci_high"):
        out[key] = math.exp(c[key]) if np.isfinite(c[key]) else math.nan
    return out


def _component(point: int, claim: str, comparison: str, **kw: Any) -> dict[str, Any]:
    row = dict.fromkeys(_COMPONENT_COLUMNS, math.nan)
    row.update(point=point, claim=claim, comparison=comparison, role="decides", statement="")
    row.update(kw)
    return row


def _need(present: set[str], names: list[str], missing: list[str]) -> bool:
    lack = [m for m in names if m not in present]
    missing.extend(m for m in lack if m not in missing)
    return not lack


def _claim_ratio(run: Run, point: int, metric: str, alpha: float) -> Verdict:
    claim = "NN ≈ 3× NTK"
    present, missing, comps = present_methods(run, point, metric), [], []
    bound = math.log1p(RATIO_TOLERANCE)
    for k in SEED_DEPTHS:
        for fam in ("NTKJ", "NTKB"):
            nn, ker = f"NN{k}", f"{fam}{k}"
            if not _need(present, [nn, ker], missing):
                continue
            c = log_mean_contrast(common_columns(run, [nn, ker], metric, point), [1.0, -1.0])
            seed = SEED_TABLE[nn].mean_rmse / SEED_TABLE[ker].mean_rmse
            t = tost(c["estimate"] - math.log(seed), c["se"], c["df"], -bound, bound, alpha=alpha)
            comps.append(
                _component(
                    point,
                    claim,
                    f"{nn} / {ker}",
                    **_exp_fields(c),
                    seed=seed,
                    statement=f"ratio within ×/÷ {1 + RATIO_TOLERANCE:g} of the seed's",
                    p_claim=t["p_tost"],
                    p_against=t["p_beyond"],
                )
            )
    for k in SEED_DEPTHS:
        nn, ntk = same_time_pair(k)
        if nn in present and ntk in present:
            c = log_mean_contrast(common_columns(run, [nn, ntk], metric, point), [1.0, -1.0])
            comps.append(
                _component(
                    point,
                    claim,
                    f"{nn} / {ntk}",
                    **_exp_fields(c),
                    statement="context: the network over its own NTK at the same training time",
                    role="context",
                )
            )
    verdict, why = _decide(comps, alpha)
    parts = [
        f"{c['comparison']} = {_fmt_ci(c['estimate'], c['ci_low'], c['ci_high'])}"
        f" (seed {c['seed']:.3f}, n = {c['n']})"
        for c in comps
        if c["role"] == "decides"
    ]
    text = "ours " + "; ".join(parts) if parts else ""
    same_t = [c for c in comps if c["role"] == "context"]
    if same_t:
        text += (
            ("; " if text else "")
            + "at the same training time "
            + "; ".join(
                f"{c['comparison']} = {_fmt_ci(c['estimate'], c['ci_low'], c['ci_high'])}"
                f" (n = {c['n']})"
                for c in same_t
            )
        )
        text += ": " + same_time_reading(same_t) + log_shares(comps)
    else:
        text += ("; " if text else "") + (
            "what the factor comes from needs NTK-NNk-T (the network's own NTK at its "
            "training time): not in this run"
        )
    return Verdict(point, claim, verdict, _finish(text, why, missing), comps, missing)


def _finish(text: str, why: str, missing: list[str]) -> str:
    if why:
        text = f"{why}; {text}" if text else why
    if missing:
        text += ("; " if text else "") + "not judged, missing: " + ", ".join(missing)
    return text


def _claim_gp(run: Run, point: int, metric: str, margin: float, alpha: float) -> Verdict:
    claim = "GP ≈ NTK"
    present, missing, pairs = present_methods(run, point, metric), [], []
    for k in SEED_DEPTHS:
        for fam in ("NTKB", "NTKJ"):
            if _need(present, [f"GP{k}", f"{fam}{k}"], missing):
                pairs.append((point, f"GP{k}", f"{fam}{k}"))
    comps = []
    if pairs:
        t = tost_table(run, pairs, metric=metric, margin=margin, alpha=alpha)
        for r in t.itertuples(index=False):
            comps.append(
                _component(
                    point,
                    claim,
                    f"{r.method} − {r.reference}",
                    n=int(r.n),
                    estimate=r.mean_diff,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    statement=f"|difference| < {margin:g} × mean {r.reference} = {r.margin:.3g} "
                    "(TOST, Holm across these comparisons)",
                    p_claim=r.p_tost_holm,
                    p_against=r.p_beyond,
                    mean_reference=r.mean_reference,
                )
            )
    verdict, why = _decide(comps, alpha)
    parts = []
    for c in comps:
        gp, ntk = c["comparison"].split(" − ")
        rel = 100 * c["estimate"] / c["mean_reference"]
        seed = 100 * (SEED_TABLE[gp].mean_rmse / SEED_TABLE[ntk].mean_rmse - 1)
        parts.append(
            f"{c['comparison']} = {_fmt_ci(c['estimate'], c['ci_low'], c['ci_high'])}"
            f" ({rel:+.1f} % of {ntk}; seed {seed:+.1f} %; "
            f"{'equivalent' if c['p_claim'] <= alpha else 'not shown equivalent'})"
        )
    text = (f"margin {100 * margin:g} % of the NTK's mean, α = {alpha:g}: " if parts else "") + (
        "; ".join(parts)
    )
    return Verdict(point, claim, verdict, _finish(text, why, missing), comps, missing)


def _seed_ntk_rows() -> list[str]:
    return [f"{fam}{k}" for fam in SEED_NTK_FAMILIES for k in SEED_DEPTHS]


def _claim_laplacian(run: Run, point: int, metric: str, alpha: float) -> Verdict:
    claim = "K1 nearer to NN than any NTK"
    present, missing, comps, parts = present_methods(run, point, metric), [], [], []
    _need(present, ["K1"], missing)
    for k in SEED_DEPTHS:
        nn = f"NN{k}"
        if "K1" not in present or not _need(present, [nn], missing):
            continue
        ntks = [t for t in _seed_ntk_rows() if _need(present, [t], missing)]
        best: dict[str, Any] | None = None
        for ntk in ntks:
            x = common_columns(run, ["K1", nn, ntk], metric, point)
            mk, mn, mt = x.mean(axis=0) if len(x) else (math.nan,) * 3
            sk, st = np.sign(mk - mn), np.sign(mt - mn)
            d = paired_t(sk * (x[:, 0] - x[:, 1]) - st * (x[:, 2] - x[:, 1]))
            comp = _component(
                point,
                claim,
                f"|K1 − {nn}| − |{ntk} − {nn}|",
                n=d["n"],
                estimate=d["mean"],
                ci_low=d["ci_low"],
                ci_high=d["ci_high"],
                seed=abs(SEED_TABLE["K1"].mean_rmse - SEED_TABLE[nn].mean_rmse)
                - abs(SEED_TABLE[ntk].mean_rmse - SEED_TABLE[nn].mean_rmse),
                statement="< 0 (K1 nearer to the network than this NTK)",
                p_claim=t_side(d["mean"], d["se"], d["n"] - 1, "less"),
                p_against=t_side(d["mean"], d["se"], d["n"] - 1, "greater"),
                dist_k1=abs(mk - mn),
                dist_ntk=abs(mt - mn),
                ntk=ntk,
            )
            comps.append(comp)
            if best is None or comp["dist_ntk"] < best["dist_ntk"]:
                best = comp
        if best is not None:
            seed_k1 = abs(SEED_TABLE["K1"].mean_rmse - SEED_TABLE[nn].mean_rmse)
            seed_ntk = min(
                (abs(SEED_TABLE[t].mean_rmse - SEED_TABLE[nn].mean_rmse), t)
                for t in _seed_ntk_rows()
            )
            parts.append(
                f"{nn}: |K1 − {nn}| = {best['dist_k1']:.4g} vs nearest NTK {best['ntk']} "
                f"{best['dist_ntk']:.4g}, paired difference "
                f"{_fmt_ci(best['estimate'], best['ci_low'], best['ci_high'])} "
                f"(seed {seed_k1:.4g} vs {seed_ntk[1]} {seed_ntk[0]:.4g})"
            )
    verdict, why = _decide(comps, alpha)
    return Verdict(point, claim, verdict, _finish("; ".join(parts), why, missing), comps, missing)


def _claim_layers(run: Run, point: int, metric: str, margin: float, alpha: float) -> Verdict:
    claim = "1 → 2 layer changes do not match"
    present, missing, comps = present_methods(run, point, metric), [], []
    bound = math.log1p(margin)

    def pct(x: float) -> float:
        return 100 * math.expm1(x) if np.isfinite(x) else math.nan

    def seed_pct(fam: str) -> float:
        return 100 * (SEED_TABLE[f"{fam}2"].mean_rmse / SEED_TABLE[f"{fam}1"].mean_rmse - 1)

    nn = ["NN2", "NN1"]
    have_nn = _need(present, nn, missing)
    if have_nn:
        c = log_mean_contrast(common_columns(run, nn, metric, point), [1.0, -1.0])
        t = tost(c["estimate"], c["se"], c["df"], -bound, bound, alpha=alpha)
        comps.append(
            _component(
                point,
                claim,
                "NN: % change 1 → 2 layers",
                n=c["n"],
                estimate=pct(c["estimate"]),
                ci_low=pct(c["ci_low"]),
                ci_high=pct(c["ci_high"]),
                seed=seed_pct("NN"),
                statement="≠ 0 (the network changes)",
                p_claim=t_side(c["estimate"], c["se"], c["df"], "two-sided"),
                p_against=t["p_tost"],
            )
        )
    parts = (
        [
            f"NN {_fmt_ci(comps[0]['estimate'], comps[0]['ci_low'], comps[0]['ci_high'], sign=True)} %"
            f" (seed {seed_pct('NN'):+.1f} %)"
        ]
        if comps
        else []
    )
    for fam in SEED_NTK_FAMILIES:
        names = [f"{fam}2", f"{fam}1"]
        if not _need(present, names, missing):
            continue
        own = log_mean_contrast(common_columns(run, names, metric, point), [1.0, -1.0])
        comps.append(
            _component(
                point,
                claim,
                f"{fam}: % change 1 → 2 layers",
                n=own["n"],
                estimate=pct(own["estimate"]),
                ci_low=pct(own["ci_low"]),
                ci_high=pct(own["ci_high"]),
                seed=seed_pct(fam),
                statement="context: the NTK's own change",
                role="context",
            )
        )
        text = (
            f"{fam} {_fmt_ci(pct(own['estimate']), pct(own['ci_low']), pct(own['ci_high']), sign=True)}"
            f" % (seed {seed_pct(fam):+.1f} %)"
        )
        if have_nn:
            c = log_mean_contrast(
                common_columns(run, names + nn, metric, point), [1.0, -1.0, -1.0, 1.0]
            )
            t = tost(c["estimate"], c["se"], c["df"], -bound, bound, alpha=alpha)
            seed_ratio = (1 + seed_pct(fam) / 100) / (1 + seed_pct("NN") / 100)
            comps.append(
                _component(
                    point,
                    claim,
                    f"{fam} change vs NN change (ratio of the 2/1 ratios)",
                    **_exp_fields(c),
                    seed=seed_ratio,
                    statement="≠ 1 (the NTK's change does not match the network's)",
                    p_claim=t_side(c["estimate"], c["se"], c["df"], "two-sided"),
                    p_against=t["p_tost"],
                )
            )
            r = comps[-1]
            text += f", ÷ NN's {_fmt_ci(r['estimate'], r['ci_low'], r['ci_high'])}"
        parts.append(text)
    verdict, why = _decide(comps, alpha)
    text = "% change 1 → 2 layers, ours [95 % CI]: " + "; ".join(parts) if parts else ""
    return Verdict(point, claim, verdict, _finish(text, why, missing), comps, missing)


def evaluate_claims(
    run: Run,
    *,
    metric: str = "rmse",
    margin: float | None = None,
    alpha: float | None = None,
) -> list[Verdict]:
    """The four verdicts on the seed's §4.2 claims, per sweep point (module docstring)."""
    run.require_finished()
    settings = report_settings(run, margin=margin, alpha=alpha)
    rel, level = settings["equivalence_margin"], settings["alpha"]
    out = []
    for point in run.point_ids:
        out += [
            _claim_ratio(run, point, metric, level),
            _claim_gp(run, point, metric, rel, level),
            _claim_laplacian(run, point, metric, level),
            _claim_layers(run, point, metric, rel, level),
        ]
    return out


def verdict_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    """``point, claim, verdict, numbers, seed_says`` of :class:`Verdict` objects, one row each."""
    rows = [
        {"point": v.point, "claim": v.claim, "verdict": v.verdict, "numbers": v.numbers,
         "seed_says": v.seed_says}
        for v in verdicts
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["point", "claim", "verdict", "numbers", "seed_says"])


def seed_verdicts(run: Run, **kwargs: Any) -> pd.DataFrame:
    """One row per claim of the seed's §4.2 and sweep point: ``point, claim, verdict,
    numbers, seed_says`` (verdict: ``reproduced``, ``not reproduced``, ``cannot tell (...)``)."""
    return verdict_frame(evaluate_claims(run, **kwargs))


def verdict_details(run: Run, verdicts: list[Verdict] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Every comparison behind :func:`seed_verdicts`: ``point, claim, comparison, n,
    estimate, ci_low, ci_high`` (95 %), ``seed`` (the same quantity from the seed's table),
    ``statement`` (what the claim says of it), ``p_claim`` (the test of the statement),
    ``p_against``, ``p_against_holm`` (the test of its opposite), ``role`` (``decides`` or
    ``context``). ``verdicts``: those of :func:`evaluate_claims`, when already computed."""
    verdicts = evaluate_claims(run, **kwargs) if verdicts is None else verdicts
    rows = [c for v in verdicts for c in v.components]
    return pd.DataFrame(
        [{k: c.get(k, math.nan) for k in _COMPONENT_COLUMNS} for c in rows],
        columns=_COMPONENT_COLUMNS,
    )
