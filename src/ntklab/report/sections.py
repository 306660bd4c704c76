"""The sections of a report: each a title, a table and the notes that explain it, built
once from a stored run so that every format shows the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..store import GENERATOR_METHOD, assumed_line
from .attribution import attribution_missing, attribution_table, has_attribution, same_time_table
from .benchmark import benchmark_parts, is_benchmark
from .equivalence import equivalence_table, ties_with_generator, width_slopes
from .findings import (
    Finding,
    attribution_finding,
    best_method_finding,
    counts_finding,
    equivalence_finding,
    ratio_finding,
    reproduction_finding,
    same_time_finding,
    slope_finding,
    verdict_finding,
)
from .phase import has_phase_grid
from .phase_claims import phase_sections
from .protocol import is_seed_protocol, resolve_generator, seed_comparison
from .render import plus_minus
from .runs import Run, report_settings
from .tables import layer_change, main_table, nn_ntk_ratios, paired_differences
from .verdicts import (
    CLAIMS,
    RATIO_TOLERANCE,
    Verdict,
    evaluate_claims,
    verdict_details,
    verdict_frame,
)

__all__ = ["Section", "build_sections", "header_lines"]


@dataclass
class Section:
    """One titled part of a report: a table (or None) and note lines under it, and the
    sentences it adds to the report's Findings block (:mod:`ntklab.report.findings`)."""

    key: str
    title: str
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    intro: str = ""
    display: pd.DataFrame | None = None  # formatted text for md/latex/html (table: for CSV)
    findings: list[Finding] = field(default_factory=list)

    def shown(self) -> pd.DataFrame | None:
        """What the text formats show (``display`` if set, else ``table``)."""
        return self.display if self.display is not None else self.table


def _drop_point(run: Run, df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="point") if len(run.points) <= 1 and "point" in df else df


def header_lines(run: Run) -> list[tuple[str, str]]:
    """``(key, value)`` lines describing the run (directory, config hash, trials, ...)."""
    exp = run.n_expected
    if exp is not None and run.n_done > exp:  # --trials lowered below what is stored
        trials = f"{run.n_done} finished (the last run asked for {exp})"
    else:
        trials = f"{run.n_done} finished" + (f" of {exp}" if exp is not None else "")
    if run.n_failed:
        trials += f", {run.n_failed} failed"
    lines = [
        ("run directory", str(run.path)),
        ("study", run.name),
        ("created", str(run.meta.get("created", "?"))),
        ("config hash", str(run.meta.get("config_hash", "?"))[:16]),
        ("trials", trials),
    ]
    if len(run.points) > 1:
        lines.append(("sweep points", str(len(run.points))))
    return lines


def _add_table(
    sections: list[Section],
    run: Run,
    key: str,
    title: str,
    table: pd.DataFrame,
    notes: list[str],
    findings: list[Finding | None] = (),
) -> None:
    """Append a section of ``table`` (without its point column when there is one point),
    unless the table is empty."""
    if len(table):
        found = [f for f in findings if f is not None]
        sections.append(Section(key, title, _drop_point(run, table), notes, findings=found))


def build_sections(
    run: Run,
    *,
    generator: str | None = None,
    pairs: tuple[tuple[str, str], ...] = (),
    compare_seed: bool | None = None,
) -> list[Section]:
    """The report's sections, in order: main table per sweep point (beside the seed's, with
    what is left out of each mean), the verdicts on the seed's claims and the attribution
    of its NTK → NN gap (runs of the seed's experiment with those methods), layer change,
    network / kernel ratios, ties with the generating kernel (TOST), the comparisons behind
    the verdicts, requested paired differences, the equivalence measures and width slopes
    (when stored). A section whose methods are absent is left out or says what is missing."""
    run.require_finished()
    if is_benchmark(run):  # repeated k-fold on real data sets: its own tables
        return [Section(**part) for part in benchmark_parts(run)]
    settings = report_settings(run)
    margin, alpha = settings["equivalence_margin"], settings["alpha"]
    sections = []
    table = main_table(run, compare_seed=compare_seed)
    seed = "seed_mean" in table
    seed_run = seed and is_seed_protocol(run)
    headline = reproduction_finding(table) if seed_run else best_method_finding(run, table)
    for point in run.point_ids:
        part = table[table["point"] == point].drop(columns="point")
        notes = [_counts_note(part)]
        if seed:
            notes.insert(
                0,
                "Seed: the seed paper's table (SPEC §4, 50 trials); ours/seed = ratio of the "
                "mean RMSEs; z = (ours − seed) / √(SE² + SE_seed²), the two-sample z-score of "
                "the difference; within 3 SE: |z| ≤ 3."
                + (
                    ""
                    if is_seed_protocol(run)
                    else " Absolute values need not match (the seed's constants were lost); "
                    "compare the patterns."
                ),
            )
        jitter = _jitter_note(run, point)
        if jitter:
            notes.append(jitter)
        if run.reductions:
            notes.append("Reduced against the full preset: " + "; ".join(run.reductions) + ".")
        notes.append(assumed_line(run.assumed))
        title = "Test RMSE" + ("" if len(run.points) <= 1 else f" — {run.point_label(point)}")
        if seed and is_seed_protocol(run):
            title = "Test RMSE beside the seed's table" + title[len("Test RMSE") :]
        key = "main" if len(run.points) <= 1 else f"main_point{point}"
        part = part.reset_index(drop=True)
        first = len(sections) == 0
        sections.append(
            Section(
                key,
                title,
                part,
                notes,
                "Mean test RMSE over finished trials; SE = sample SD / √n.",
                display=_without_redundant_label(part),
                findings=[f for f in (headline, counts_finding(run, table)) if f] if first else [],
            )
        )
    verdicts = seed_comparison(run, compare_seed)
    claims = evaluate_claims(run) if verdicts else []
    if verdicts:
        sections.append(_verdict_section(run, claims, margin, alpha))
    if has_attribution(run):
        sections.append(_attribution_section(run))
    same_t = same_time_table(run)
    if len(same_t):
        sections.append(
            Section(
                "same_time",
                "Each network beside its own NTK at the same training time, per trial",
                _drop_point(run, same_t),
                [
                    "nn_rmse: the trained network's test RMSE; ntk_same_t_rmse: its NTK's "
                    "prediction after the same number of SGD steps (epochs × ⌈m/batch⌉), same "
                    "lr, starting from the initial function of that very network (SPEC §6, time "
                    "matching); difference = nn_rmse − ntk_same_t_rmse. nn_lin_rms: RMS over "
                    "test points of the network minus its linearization; kernel_drift: "
                    "‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F of the empirical NTK (when stored)."
                ],
                findings=[f for f in (same_time_finding(same_t),) if f],
            )
        )
    _add_table(
        sections,
        run,
        "layer_change",
        "Change from 1 to 2 hidden layers",
        layer_change(run, compare_seed=compare_seed),
        [
            "change % = 100 (mean(to) / mean(from) − 1) on the n trials both methods "
            "have; 95 % CI by the delta method on the log of the ratio of paired means; "
            "p (paired t): paired t-test of the per-trial difference."
        ]
        + (["seed change %: the same formula on the seed's table."] if seed else []),
    )
    ratios = nn_ntk_ratios(run, compare_seed=compare_seed)
    _add_table(
        sections,
        run,
        "nn_kernel_ratios",
        "Network / kernel RMSE ratios at equal depth",
        ratios,
        [
            "ratio = mean RMSE of the network / mean RMSE of the kernel method of the same "
            "depth, on the n trials both have, with its 95 % CI (delta method on the log "
            "ratio); mean diff = paired mean of network − kernel with its 95 % t CI; "
            "same param.: the kernel is the network's own NTK or NNGP."
        ],
        [None if seed_run else ratio_finding(ratios)],
    )
    gen = resolve_generator(run, generator)
    if gen is not None and gen in set(run.final("rmse").columns):
        ties = ties_with_generator(run, gen)
        sections.append(
            Section(
                "ties",
                f"Ties with the generating kernel ({gen})",
                _drop_point(run, ties),
                _tost_notes(margin, alpha, "the generator", len(ties)),
                f"Equivalence margin {margin:g} (relative: δ = {margin:g} × mean RMSE of "
                f"{gen}), α = {alpha:g}.",
            )
        )
    elif generator is None:
        sections.append(
            Section(
                "ties",
                "Ties with the generating kernel",
                None,
                [
                    "Skipped: the run's config names no data.generator matching one of its methods; "
                    "pass --generator METHOD."
                ],
            )
        )
    if verdicts:
        details = verdict_details(run, claims)
        if len(details):
            sections.append(
                Section(
                    "verdict_details",
                    "The comparisons behind the verdicts",
                    _drop_point(run, details),
                    [
                        "ours: our estimate (ratio, paired difference or % change) on the n "
                        "trials all its methods have, with its 95 % CI; seed: the same from the "
                        "seed's table; p (claim): the test of the statement; p (against): the "
                        "test of its opposite, Holm-adjusted across the claim's deciding "
                        "comparisons; context rows inform but do not decide."
                    ],
                )
            )
    for a, b in pairs:
        pd_ = paired_differences(run, a, b)
        sections.append(
            Section(
                f"paired_{a}_{b}",
                f"Paired differences {a} − {b}",
                _drop_point(run, pd_),
                [
                    "Per-trial differences a − b over trials where both are finite; 95 % t "
                    "confidence interval; paired t-test and Wilcoxon signed-rank p-values."
                ],
            )
        )
    eq = equivalence_table(run)
    if len(eq):
        sections.append(
            Section(
                "equivalence",
                "Network vs NTK (equivalence measures)",
                _drop_point(run, eq),
                [
                    "Mean ± standard error over finished trials. nn_lin_rms: RMS "
                    "of f_NN − f_lin on test points (f_lin: NTK prediction at the same training time "
                    "and initialization); kernel_drift: ‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F; diverged: fraction "
                    "of trials whose training diverged."
                ],
                display=plus_minus(_drop_point(run, eq)),
                findings=[f for f in (equivalence_finding(eq),) if f],
            )
        )
        slopes = (
            pd.concat(
                [width_slopes(run, m) for m in ("nn_lin_rms", "kernel_drift")], ignore_index=True
            )
            if not has_phase_grid(run)
            else []
        )  # a phase grid: its exponent table instead
        if len(slopes):
            sections.append(
                Section(
                    "width_slopes",
                    "Log-log slopes against width",
                    slopes,
                    [
                        "Least-squares slope of log(mean) on log(width); wide-network theory predicts "
                        "−1/2 (Lee et al. 2019)."
                    ],
                    findings=[f for f in (slope_finding(slopes),) if f],
                )
            )
    if has_phase_grid(run):  # a sweep over width x (lazy_scale or lr): the phase diagram
        sections += [Section(**part) for part in phase_sections(run)]
    return sections


def _without_redundant_label(part: pd.DataFrame) -> pd.DataFrame | None:
    """The main table without its ``label`` column where every label is the method's name
    (for the text formats; the CSV keeps it), else None (show the table as it is)."""
    if "label" in part and (part["label"].astype(str) == part["method"].astype(str)).all():
        return part.drop(columns="label")
    return None


def _counts_note(part: pd.DataFrame) -> str:
    """What the main table leaves out of its means, in words."""
    text = (
        "n: trials in the mean; diverged: network trials whose training diverged; failed: "
        "trials in which the method raised an error; missing: finished trials that should have "
        "a value of the method but have no finite one (diverged, failed or absent), left out of "
        "the mean."
    )
    div = part.loc[part["diverged"].fillna(0) > 0, ["method", "diverged"]]
    if len(div):
        text += " Diverged: " + ", ".join(
            f"{m} in {int(k)} trial(s)" for m, k in zip(div["method"], div["diverged"], strict=True)
        )
        text += "; a network's mean RMSE covers only the trials in which it converged."
    return text


def _jitter_note(run: Run, point: int, most: int = 6) -> str:
    """Which trials needed diagonal jitter to factor a kernel matrix, and how much ("" if
    none): the data generator's (its y) and each kernel method's (its solve)."""
    jit = run.jitter(point)
    if not len(jit):
        return ""
    parts = []
    for method, grp in jit.groupby("method", sort=False):
        who = "the data generator" if method == GENERATOR_METHOD else str(method)
        shown = [f"{int(t)} ({v:.2g})" for t, v in zip(grp["trial"], grp["value"], strict=True)]
        more = len(shown) - most
        listed = ", ".join(shown[:most]) + (f" and {more} more" if more > 0 else "")
        parts.append(f"{who} in trial{'s' if len(shown) > 1 else ''} {listed}")
    return (
        "Jitter: a kernel matrix was nearly singular and its Cholesky factorization needed "
        "jitter on the diagonal (at most 1e-6 × its mean diagonal; none elsewhere): "
        + "; ".join(parts)
        + "."
    )


def _tost_notes(margin: float, alpha: float, reference: str, m: int) -> list[str]:
    return [
        f"Equivalence by two one-sided paired t-tests (TOST): the method ties with "
        f"{reference} ('equivalent') when |mean diff| < δ = {margin:g} × the reference's mean "
        f"RMSE is shown at α = {alpha:g} after Holm's correction across the {m} comparison(s) "
        f"of this table; 'not shown equivalent' is not evidence of a difference. mean diff = "
        f"mean over trials of RMSE(method) − RMSE(reference) (paired, same data) with its 95 % "
        f"t CI; TOST CI: the {100 * (1 - 2 * alpha):g} % interval TOST implies (inside ±δ "
        f"exactly when the raw TOST p ≤ α); p (paired t): the ordinary test of no difference; "
        f"p (beyond margin): the test that |difference| > δ."
    ]


def _verdict_section(run: Run, claims: list[Verdict], margin: float, alpha: float) -> Section:
    verdicts = _drop_point(run, verdict_frame(claims))
    shown = verdicts.drop(columns="seed_says")
    notes = [f"The seed says ({claim}): “{words}”." for claim, words in CLAIMS.items()]
    notes += [
        "reproduced: every comparison of the claim is shown at α = "
        f"{alpha:g} (intersection-union test); not reproduced: the opposite is shown for at "
        "least one comparison (Holm-adjusted across the claim's comparisons); cannot tell: "
        "neither, or the methods are missing. Intervals are 95 %, on the trials all methods "
        "of a comparison have.",
        f"NN ≈ 3× NTK: our NN/NTK ratio (delta-method CI) within ×/÷ {1 + RATIO_TOLERANCE:g} "
        "of the seed's own ratio (TOST on the log ratio); the ratio to the network's own NTK "
        "at the same training time (NTK-NNk-T) says where the factor comes from. GP ≈ NTK: "
        f"TOST of GPk − NTKBk and GPk − NTKJk at the margin {margin:g} × the NTK's mean, "
        "Holm across the four. K1 nearer: the paired contrast |K1 − NN| − |NTK − NN| < 0 "
        "against each of the seed's NTK rows (one-sided paired t). Layer changes: the "
        "network's 1 → 2 change ≠ 0 and each NTK family's change ≠ the network's (ratio of the "
        f"2/1 ratios ≠ 1); the opposite: equivalence within ×/÷ {1 + margin:g} (TOST).",
    ]
    return Section(
        "verdicts",
        "The seed's claims (§4.2): verdicts",
        verdicts,
        notes,
        f"Margin {margin:g} (relative), α = {alpha:g}.",
        display=shown,
        findings=[f for f in (verdict_finding(claims, len(run.points) > 1),) if f],
    )


def _attribution_section(run: Run) -> Section:
    att = _drop_point(run, attribution_table(run))
    notes = [
        "From the seed's NTK row to its network row, one cause at a time (SPEC §7.2): change = "
        "paired mean difference of the method and the previous step's (from), on the n pairs "
        "of trials both have, with its 95 % t CI; share of gap % = 100 change / the total "
        "NNk − NTKJk (last row). With different trials per step the shares need not add up "
        "to 100 %; a missing step merges its cause into the next."
    ]
    for point in run.point_ids:
        where = "" if len(run.points) <= 1 else f" at {run.point_label(point)}"
        for k, missing in attribution_missing(run, point).items():
            if missing:
                notes.append(f"Depth {k}{where}: missing {', '.join(missing)} (steps merged).")
        for k in (1, 2):
            info = run.method_info(f"NTKJ{k}")
            norm = str((info.get("spec") or {}).get("normalization") or "").lower()
            if norm == "corrected" and f"NTKJ{k}" in run.method_names:
                notes.append(
                    f"NTKJ{k} in this run already uses the corrected normalization, so the "
                    "normalization step compares like with like."
                )
    return Section(
        "attribution",
        "Attribution: from the seed's NTK row to its network, one cause at a time",
        att,
        notes,
        findings=[f for f in (attribution_finding(att),) if f],
    )
