"""The "Findings" that open a report: a few sentences made from the run's own numbers.

Each section of a report (:class:`~ntklab.report.sections.Section`) carries the findings of
its own table in ``Section.findings``; :func:`collect_findings` gathers them in the order of
their ``rank`` (then of the sections) for the top of every Markdown, LaTeX and HTML report.
A new section contributes a finding by building one here-style function from its table and
setting ``findings=[...]`` on its Section; nothing else needs to know about it.

For a run of the seed's experiment the findings say whether its table reproduces, the
verdict on each of its claims (one line each), the largest step of the attribution of its
NTK → NN gap, and each network beside its own NTK at the same training time; for other runs
the best method, the networks against their kernels (at the same training time where
stored) and what failed or diverged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .render import format_estimate_ci, format_mean_se
from .stats import paired_t

if TYPE_CHECKING:
    from .runs import Run
    from .verdicts import Verdict

__all__ = [
    "Finding",
    "RANKS",
    "collect_findings",
    "reproduction_finding",
    "best_method_finding",
    "ratio_finding",
    "verdict_finding",
    "claims_table_finding",
    "attribution_finding",
    "same_time_finding",
    "equivalence_finding",
    "slope_finding",
    "counts_finding",
]

#: Where a kind of finding goes in the block (lower first): what the run is about, the
#: verdicts, where a gap comes from, the network against its NTK, then the bookkeeping.
RANKS = {"headline": 10, "verdicts": 20, "cause": 30, "network": 40, "other": 50, "counts": 90}


@dataclass(frozen=True)
class Finding:
    """One sentence of the Findings block, with optional lines under it (one each)."""

    text: str
    lines: tuple[str, ...] = ()
    rank: int = RANKS["other"]


def collect_findings(groups: Iterable[Sequence[Finding]], most: int = 6) -> list[Finding]:
    """The findings of every section (``groups``, in the sections' order), sorted by rank
    (stable), at most ``most`` of them."""
    found = [f for group in groups for f in group]
    return sorted(found, key=lambda f: f.rank)[:most]


def _groups(df: pd.DataFrame, keys: list[str]):
    """``df.groupby`` on those of ``keys`` it has (a report drops ``point`` without a sweep),
    yielding ``(dict of key values, group)``."""
    have = [k for k in keys if k in df.columns]
    if not have:
        yield {}, df
        return
    for values, grp in df.groupby(have, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        yield dict(zip(have, values, strict=True)), grp


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def reproduction_finding(main: pd.DataFrame) -> Finding | None:
    """Whether the rows of the seed's table reproduce (``|z| ≤ 3``), from the main table
    with the seed's columns; None without them."""
    if "z" not in main:
        return None
    rows = main[np.isfinite(main["z"].astype(float))]
    if not len(rows):
        return None
    bad = rows[rows["z"].abs() > 3]
    worst = rows.loc[rows["z"].abs().idxmax()]
    if not len(bad):
        text = (
            f"All {len(rows)} rows of the seed's table that this run has are reproduced: each "
            f"mean test RMSE lies within 3 combined standard errors of the seed's (largest "
            f"|z| = {abs(worst['z']):.2f}, {worst['method']})."
        )
    else:
        listed = ", ".join(
            f"{m} (z = {z:+.2f})" for m, z in zip(bad["method"], bad["z"], strict=True)
        )
        text = (
            f"{len(rows) - len(bad)} of {len(rows)} rows of the seed's table are reproduced "
            f"within 3 combined standard errors; not reproduced: {listed}."
        )
    return Finding(text, rank=RANKS["headline"])


def best_method_finding(run: Run, main: pd.DataFrame) -> Finding | None:
    """The method with the lowest mean test RMSE, and the best network beside it when the
    best is a kernel; over a sweep, which methods are best at how many points."""
    best, nets = [], []
    for _, part in _groups(main, ["point"]):
        part = part[np.isfinite(part["mean"].astype(float))]
        if not len(part):
            continue
        best.append(part.loc[part["mean"].idxmin()])
        net = part[[run.is_network(m) for m in part["method"]]]
        nets.append(net.loc[net["mean"].idxmin()] if len(net) else None)
    if not best:
        return None
    if len(best) == 1:
        b, net = best[0], nets[0]
        text = (
            f"{b['method']} ({format_mean_se(b['mean'], b['se'])}, {_plural(int(b['n']), 'trial')})"
        )
        if net is not None and not run.is_network(str(b["method"])):
            text += (
                f"; the best network, {net['method']}, has "
                f"{format_mean_se(net['mean'], net['se'])} ({net['mean'] / b['mean']:.2f}×)"
            )
        return Finding(f"Lowest mean test RMSE: {text}.", rank=RANKS["headline"])

    def tally(rows: list[pd.Series]) -> str:
        names = [str(r["method"]) for r in rows]
        means = [float(r["mean"]) for r in rows]
        counts = ", ".join(f"{m} at {names.count(m)}" for m in dict.fromkeys(names))
        return f"{counts} of {len(best)} points ({min(means):.4g} to {max(means):.4g})"

    text = f"Lowest mean test RMSE over the {len(best)} sweep points: {tally(best)}"
    nets = [n for n in nets if n is not None]
    if nets and not all(run.is_network(str(b["method"])) for b in best):
        text += f"; best network: {tally(nets)}"
    return Finding(text + ".", rank=RANKS["headline"])


def ratio_finding(ratios: pd.DataFrame) -> Finding | None:
    """Each network over its own kernel (``same_parameterization``), else over the first
    kernel of its depth, from :func:`~ntklab.report.tables.nn_ntk_ratios`: the ratio with
    its 95 % CI, or its range over the sweep points."""
    if not len(ratios):
        return None
    per_pair: dict[tuple[str, str, bool], list[pd.Series]] = {}
    for keys, grp in _groups(ratios, ["point", "network"]):
        own = grp[grp["same_parameterization"].astype(bool)]
        row = (own if len(own) else grp).iloc[0]
        if np.isfinite(row["nn_kernel_ratio"]):
            per_pair.setdefault((keys["network"], row["kernel"], bool(len(own))), []).append(row)
    parts = []
    for (network, kernel, own), rows in list(per_pair.items())[:4]:
        mark = " (its own kernel)" if own else ""
        if len(rows) == 1:
            r = rows[0]
            value = format_estimate_ci(r["nn_kernel_ratio"], r["ratio_ci_low"], r["ratio_ci_high"])
        else:
            vals = [float(r["nn_kernel_ratio"]) for r in rows]
            value = f"{min(vals):.2f} to {max(vals):.2f} over {len(vals)} sweep points"
        parts.append(f"{network} / {kernel}{mark} = {value}")
    if not parts:
        return None
    return Finding(
        "Test RMSE of each network over a kernel of its depth (95 % CI): " + "; ".join(parts) + ".",
        rank=RANKS["other"],
    )


def verdict_finding(verdicts: Sequence[Verdict], many_points: bool = False) -> Finding | None:
    """The verdict on each of the seed's claims, one line each with its deciding numbers."""
    if not verdicts:
        return None
    lines = []
    for v in verdicts:
        deciding = [c for c in v.components if c["role"] == "decides"][:2]
        nums = []
        for c in deciding:
            est = format_estimate_ci(c["estimate"], c["ci_low"], c["ci_high"])
            seed = f", seed {c['seed']:.3g}" if np.isfinite(c.get("seed", math.nan)) else ""
            nums.append(f"{c['comparison']} = {est}{seed}")
        where = f"point {v.point}: " if many_points else ""
        lines.append(f"{where}{v.claim}: {v.verdict}" + (f" ({'; '.join(nums)})" if nums else ""))
    counts: dict[str, int] = {}
    for v in verdicts:
        kind = v.verdict.split(" (")[0]  # "cannot tell (too few trials)": cannot tell
        counts[kind] = counts.get(kind, 0) + 1
    tally = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    return Finding(
        f"The seed's {len(verdicts)} claims (§4.2), each judged by a declared test: {tally}:",
        tuple(lines),
        rank=RANKS["verdicts"],
    )


def claims_table_finding(table: pd.DataFrame, what: str) -> Finding | None:
    """The verdicts of a ``claim, verdict`` table (e.g. the phase diagram's anchor claims),
    tallied, one line each."""
    if not len(table) or not {"claim", "verdict"} <= set(table.columns):
        return None
    kinds = [str(v).split(" (")[0] for v in table["verdict"]]
    tally = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
    lines = tuple(f"{c}: {v}" for c, v in zip(table["claim"], table["verdict"], strict=True))
    return Finding(f"{what}, each judged by a declared test: {tally}:", lines, RANKS["verdicts"])


def attribution_finding(att: pd.DataFrame) -> Finding | None:
    """The largest step of the walk from the seed's NTK row to its network, per depth."""
    steps = att[att["share_pct"].notna() & ~att["step"].str.startswith("total")]
    if not len(steps):
        return None
    parts = []
    for keys, grp in _groups(steps, ["point", "depth"]):
        depth = keys["depth"]
        top = grp.loc[grp["share_pct"].abs().idxmax()]
        change = format_estimate_ci(top["change"], top["ci_low"], top["ci_high"], sign=True)
        parts.append(
            f"at depth {int(depth)} it is “{top['step']}” ({top['previous']} → {top['method']}: "
            f"{change}, {top['share_pct']:.0f} % of the gap)"
        )
    return Finding(
        "The largest step from the seed's NTK row to its network row: "
        + "; ".join(parts[:2])
        + ".",
        rank=RANKS["cause"],
    )


def same_time_finding(same_t: pd.DataFrame) -> Finding | None:
    """Each network beside its own NTK prediction at the same training time: the paired
    relative difference of the test RMSEs with its 95 % interval."""
    if not len(same_t):
        return None
    parts = []
    for keys, grp in _groups(same_t, ["point", "network", "ntk"]):
        network, ntk = keys["network"], keys["ntk"]
        d = paired_t(grp["difference"].to_numpy(float))
        base = float(grp["ntk_same_t_rmse"].mean())
        if not (np.isfinite(d["mean"]) and base > 0):
            continue
        rel = format_estimate_ci(
            100 * d["mean"] / base, 100 * d["ci_low"] / base, 100 * d["ci_high"] / base, sign=True
        )
        parts.append(f"{network} − {ntk} = {rel} % ({_plural(int(d['n']), 'trial')})")
    if not parts:
        return None
    return Finding(
        "Each network against its own NTK prediction at the same training time (paired "
        "difference of test RMSE, % of the NTK's, 95 % CI): " + "; ".join(parts) + ".",
        rank=RANKS["network"],
    )


def equivalence_finding(eq: pd.DataFrame) -> Finding | None:
    """The networks' test RMSE over their NTK's prediction at the same training time, from
    :func:`~ntklab.report.equivalence.equivalence_table` (runs that stored it)."""
    if not {"rmse", "ntk_same_t_rmse"} <= set(eq.columns):
        return None
    ntk = eq["ntk_same_t_rmse"].astype(float)  # inf where the linearized model diverged
    rows = eq[np.isfinite(eq["rmse"].astype(float)) & np.isfinite(ntk) & (ntk > 0)]
    if not len(rows):
        return None
    ratio = rows["rmse"] / rows["ntk_same_t_rmse"]
    if len(rows) == 1:
        r = rows.iloc[0]
        text = (
            f"At the same training time {r['method']}'s test RMSE is {ratio.iloc[0]:.3f}× its "
            f"NTK's prediction ({format_mean_se(r['rmse'], r.get('rmse_se'))} vs "
            f"{format_mean_se(r['ntk_same_t_rmse'], r.get('ntk_same_t_rmse_se'))})."
        )
    else:
        lo, hi = ratio.idxmin(), ratio.idxmax()

        def who(i: Any) -> str:
            w = rows.loc[i, "width"] if "width" in rows else math.nan
            at = f" at width {w:g}" if isinstance(w, int | float) and np.isfinite(w) else ""
            return f"{rows.loc[i, 'method']}{at}"

        text = (
            f"At the same training time the networks' test RMSE is {ratio.min():.3f}× "
            f"({who(lo)}) to {ratio.max():.3f}× ({who(hi)}) their NTK's prediction."
        )
    return Finding(text, rank=RANKS["network"])


def slope_finding(slopes: pd.DataFrame) -> Finding | None:
    """How the network–NTK measures fall with width (log-log slopes; theory −1/2)."""
    if not len(slopes) or "slope" not in slopes:
        return None
    parts = []
    for keys, grp in _groups(slopes, ["metric"]):
        metric = keys.get("metric", "the measure")
        vals = grp["slope"].astype(float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            span = (
                f"{vals.min():+.2f}"
                if len(vals) == 1
                else f"{vals.min():+.2f} to {vals.max():+.2f}"
            )
            parts.append(f"{metric} like width^({span})")
    if not parts:
        return None
    return Finding(
        "Against width, " + " and ".join(parts) + " (wide-network theory: −1/2).",
        rank=RANKS["network"] + 1,
    )


def counts_finding(run: Run, main: pd.DataFrame) -> Finding:
    """How many trials finished and failed, and which methods diverged or failed."""
    exp = run.n_expected
    text = (
        f"{run.n_done} of {exp} trials finished"
        if exp is not None
        else f"{run.n_done} trials finished"
    )
    if run.n_failed:
        text += f", {run.n_failed} failed"
    issues = []
    for col, what in (("diverged", "diverged"), ("failed", "raised an error")):
        if col not in main:
            continue
        hit = main[main[col].fillna(0) > 0]
        for method, count in hit.groupby("method", sort=False)[col].sum().items():
            issues.append(f"{method} {what} in {_plural(int(count), 'trial')}")
    if issues:
        text += "; " + ", ".join(issues[:6]) + " (left out of its mean)"
    else:
        text += "; no network diverged and no method failed"
    return Finding(text + ".", rank=RANKS["counts"])
