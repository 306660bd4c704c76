"""Assemble a report: the sections (tables + notes) of a run, rendered as Markdown, LaTeX,
CSV or HTML (:mod:`ntklab.report.html`), with the figures saved beside it.

One list of :class:`Section` feeds every format, so all formats show the same numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..store import GENERATOR_METHOD, assumed_line
from .figures import caption, make_figures, save_figures
from .seed import (
    CLAIMS,
    RATIO_TOLERANCE,
    attribution_missing,
    attribution_table,
    has_attribution,
    same_time_table,
    seed_verdicts,
    verdict_details,
)
from .tables import (
    ReportError,
    Run,
    _seed_flag,
    equivalence_table,
    is_seed_protocol,
    layer_change,
    main_table,
    nn_ntk_ratios,
    paired_differences,
    report_settings,
    resolve_generator,
    ties_with_generator,
    width_slopes,
)

__all__ = [
    "Section",
    "FORMATS",
    "build_sections",
    "header_lines",
    "format_value",
    "render_markdown",
    "render_latex",
    "write_csv",
    "write_report",
    "default_out",
]

#: Output formats of :func:`write_report`.
FORMATS = ("md", "csv", "latex", "html")

_DISPLAY = {
    "mean": "mean RMSE",
    "se": "SE",
    "seed_mean": "seed mean",
    "seed_se": "seed SE",
    "ratio": "ours/seed",
    "method_from": "from",
    "method_to": "to",
    "mean_from": "mean (from)",
    "mean_to": "mean (to)",
    "mean_a": "mean a",
    "mean_b": "mean b",
    "change_pct": "change %",
    "seed_change_pct": "seed change %",
    "p_t": "p (paired t)",
    "p_wilcoxon": "p (Wilcoxon)",
    "mean_diff": "mean diff",
    "sd_diff": "SD diff",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "nn_kernel_ratio": "NN / kernel",
    "ratio_ci_low": "ratio 95% CI low",
    "ratio_ci_high": "ratio 95% CI high",
    "change_ci_low": "change 95% CI low",
    "change_ci_high": "change 95% CI high",
    "missing": "missing (not in mean)",
    "within_3se": "within 3 SE",
    "mean_method": "mean (method)",
    "mean_reference": "mean (reference)",
    "ci_tost_low": "TOST CI low",
    "ci_tost_high": "TOST CI high",
    "margin_rel": "margin (rel.)",
    "margin": "margin δ",
    "p_tost": "p (TOST)",
    "p_tost_holm": "p (TOST, Holm)",
    "p_beyond": "p (beyond margin)",
    "p_beyond_holm": "p (beyond, Holm)",
    "previous": "from",
    "n_pairs": "n pairs",
    "change": "change (paired)",
    "share_pct": "share of gap %",
    "estimate": "ours",
    "seed": "seed",
    "p_claim": "p (claim)",
    "p_against": "p (against)",
    "p_against_holm": "p (against, Holm)",
    "seed_ratio": "seed NN / kernel",
    "same_parameterization": "same param.",
    "n_widths": "widths",
    "slope_se": "slope SE",
    "rmse": "NN RMSE",
    "ntk_same_t_rmse": "NTK RMSE (same T)",
    "ntk_inf_rmse": "NTK RMSE (T = ∞)",
}


_RATIO_COLUMNS = frozenset(
    {"ratio", "seed_ratio", "nn_kernel_ratio", "ratio_ci_low", "ratio_ci_high", "slope", "slope_se"}
)
_COUNT_COLUMNS = frozenset({"n", "n_pairs", "diverged", "failed", "missing", "depth"})


@dataclass
class Section:
    """One titled part of a report: a table (or None) and note lines under it."""

    key: str
    title: str
    table: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    intro: str = ""
    display: pd.DataFrame | None = None  # formatted text for md/latex/html (table: for CSV)

    def shown(self) -> pd.DataFrame | None:
        """What the text formats show (``display`` if set, else ``table``)."""
        return self.display if self.display is not None else self.table


def format_value(column: str, value: Any) -> str:
    """Text of one table cell: p-values 3 significant digits, percentages signed with 2
    decimals, ratios 3 decimals, other floats 5 significant digits, NaN as ``–``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return str(int(value))
    if isinstance(value, float) or hasattr(value, "dtype"):
        v = float(value)
        if column.startswith("p_"):
            return f"{v:.3g}"
        if column.endswith("_pct") or column.startswith("change_ci_"):
            return f"{v:+.2f}"
        if column == "z":
            return f"{v:+.2f}"
        if column in _RATIO_COLUMNS:
            return f"{v:.3f}"
        if column in _COUNT_COLUMNS and v.is_integer():
            return str(int(v))
        if column == "width" and v.is_integer():
            return str(int(v))
        return f"{v:.5g}"
    return str(value)


def _display(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = [_DISPLAY.get(c, c) for c in df.columns]
    rows = [
        [format_value(c, v) for c, v in zip(df.columns, rec, strict=True)]
        for rec in df.itertuples(index=False, name=None)
    ]
    return header, rows


def _drop_point(run: Run, df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="point") if len(run.points) <= 1 and "point" in df else df


def header_lines(run: Run) -> list[tuple[str, str]]:
    """``(key, value)`` lines describing the run (directory, config hash, trials, ...)."""
    exp = run.n_expected
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
    settings = report_settings(run)
    margin, alpha = settings["equivalence_margin"], settings["alpha"]
    sections = []
    table = main_table(run, compare_seed=compare_seed)
    seed = "seed_mean" in table
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
        sections.append(
            Section(
                key,
                title,
                part.reset_index(drop=True),
                notes,
                "Mean test RMSE over finished trials; SE = sample SD / √n.",
            )
        )
    verdicts = _seed_flag(run, compare_seed)
    if verdicts:
        sections.append(_verdict_section(run, margin, alpha))
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
            )
        )
    lc = layer_change(run, compare_seed=compare_seed)
    if len(lc):
        sections.append(
            Section(
                "layer_change",
                "Change from 1 to 2 hidden layers",
                _drop_point(run, lc),
                [
                    "change % = 100 (mean(to) / mean(from) − 1) on the n trials both methods "
                    "have; 95 % CI by the delta method on the log of the ratio of paired means; "
                    "p (paired t): paired t-test of the per-trial difference."
                ]
                + (["seed change %: the same formula on the seed's table."] if seed else []),
            )
        )
    ratios = nn_ntk_ratios(run, compare_seed=compare_seed)
    if len(ratios):
        sections.append(
            Section(
                "nn_kernel_ratios",
                "Network / kernel RMSE ratios at equal depth",
                _drop_point(run, ratios),
                [
                    "ratio = mean RMSE of the network / mean RMSE of the kernel method of the same "
                    "depth, on the n trials both have, with its 95 % CI (delta method on the log "
                    "ratio); mean diff = paired mean of network − kernel with its 95 % t CI; "
                    "same param.: the kernel is the network's own NTK or NNGP."
                ],
            )
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
        details = verdict_details(run)
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
                display=_plus_minus(_drop_point(run, eq)),
            )
        )
        slopes = pd.concat(
            [width_slopes(run, m) for m in ("nn_lin_rms", "kernel_drift")], ignore_index=True
        )
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
                )
            )
    return sections


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


def _verdict_section(run: Run, margin: float, alpha: float) -> Section:
    verdicts = _drop_point(run, seed_verdicts(run))
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
    )


def _plus_minus(df: pd.DataFrame) -> pd.DataFrame:
    """Merge each ``<metric>`` / ``<metric>_se`` column pair into one ``mean ± se`` text."""
    out = df.copy()
    merged = []
    for col in df.columns:
        if f"{col}_se" in df.columns:
            out[col] = [
                f"{format_value(col, m)} ± {format_value(col, e)}"
                for m, e in zip(df[col], df[f"{col}_se"], strict=True)
            ]
            out = out.drop(columns=f"{col}_se")
            merged.append(col)
    out.attrs["numeric"] = merged
    return out


def _numeric(df: pd.DataFrame) -> list[bool]:
    """Right-align numbers (and merged ``mean ± se`` texts)."""
    extra = set(df.attrs.get("numeric", ()))
    return [
        c in extra
        or (pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
        for c in df.columns
    ]


# ---- renderers ---------------------------------------------------------------------------------
def _md_table(df: pd.DataFrame) -> str:
    header, rows = _display(df)
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    align = ["---:" if num else "---" for num in _numeric(df)]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def render_markdown(
    run: Run,
    sections: list[Section],
    figures: dict[str, dict[str, Path]] | None = None,
    relative_to: Path | None = None,
) -> str:
    """The report as Markdown (tables as pipe tables, figures as image links)."""
    out = [f"# ntklab report: {run.name}", ""]
    out += [f"- {k}: {v}" for k, v in header_lines(run)]
    out.append("")
    notes = run.notes()
    if notes:
        out += ["**Notes**", ""] + [f"- {n}" for n in notes]
    for s in sections:
        out += ["", f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.shown() is not None:
            out += [_md_table(s.shown()), ""]
        out += [f"{n}\n" for n in s.notes]
    if figures:
        out += ["", "## Figures", ""]
        for name, paths in figures.items():
            out += [
                f"![{caption(name)}]({_rel(paths['png'], relative_to)})",
                f"*{name}*: {caption(name)} (SVG: {_rel(paths['svg'], relative_to)})",
                "",
            ]
    out += ["", "## Versions", ""]
    out += [f"- {k}: {v}" for k, v in run.versions.items()] or ["(none recorded)"]
    out += [
        "",
        "## Config",
        "",
        "```json",
        json.dumps(run.config, indent=2, sort_keys=True),
        "```",
        "",
    ]
    return "\n".join(out)


def _rel(path: Path, base: Path | None) -> str:
    """``path`` as a link from a file in ``base`` (as given when the report goes to stdout)."""
    if base is None:
        return Path(path).as_posix()
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_posix()


_LATEX_ESC = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "−": "$-$",
    "√": r"$\sqrt{}$",
    "Θ": r"$\Theta$",
    "‖": r"$\|$",
    "§": r"\S{}",
    "→": r"$\to$",
    "≈": r"$\approx$",
    "×": r"$\times$",
    "÷": r"$\div$",
    "±": r"$\pm$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "≠": r"$\neq$",
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
    "ρ": r"$\rho$",
    "α": r"$\alpha$",
    "δ": r"$\delta$",
    "σ": r"$\sigma$",
    "β": r"$\beta$",
    "₀": r"$_0$",
    "²": r"$^2$",
    "“": "``",
    "”": "''",
    "∞": r"$\infty$",
    "·": r"$\cdot$",
}


def _tex(text: str) -> str:
    parts = str(text).split("√n")
    return r"$\sqrt{n}$".join("".join(_LATEX_ESC.get(ch, ch) for ch in p) for p in parts)


def render_latex(
    run: Run,
    sections: list[Section],
    figures: dict[str, dict[str, Path]] | None = None,
    relative_to: Path | None = None,
) -> str:
    """The report as a LaTeX fragment (``booktabs`` tables, ``graphicx`` figures)."""
    out = [
        f"% ntklab report: {run.name} -- needs \\usepackage{{booktabs,graphicx}}",
        f"\\section*{{ntklab report: {_tex(run.name)}}}",
        r"\begin{itemize}",
    ]
    out += [f"  \\item {_tex(k)}: {_tex(v)}" for k, v in header_lines(run)]
    out.append(r"\end{itemize}")
    out += [f"\\paragraph{{Note.}} {_tex(n)}" for n in run.notes()]
    for s in sections:
        out += ["", f"\\subsection*{{{_tex(s.title)}}}"]
        if s.intro:
            out.append(_tex(s.intro))
        if s.shown() is not None:
            header, rows = _display(s.shown())
            align = "".join("r" if num else "l" for num in _numeric(s.shown()))
            out += [
                r"\begin{center}",
                f"\\begin{{tabular}}{{{align}}}",
                r"\toprule",
                " & ".join(_tex(h) for h in header) + r" \\",
                r"\midrule",
            ]
            out += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
            out += [r"\bottomrule", r"\end{tabular}", r"\end{center}"]
        out += [_tex(n) + "\n" for n in s.notes]
    for name, paths in (figures or {}).items():
        out += [
            r"\begin{figure}[ht]",
            r"\centering",
            f"\\includegraphics[width=\\linewidth]{{{_rel(paths['png'], relative_to)}}}",
            f"\\caption{{{_tex(caption(name))}}}",
            f"\\label{{fig:{name}}}",
            r"\end{figure}",
        ]
    return "\n".join(out) + "\n"


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def write_csv(sections: list[Section], directory: str | Path) -> list[Path]:
    """Write each section's table as ``<directory>/<key>.csv`` (full precision)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for s in sections:
            if s.table is not None:
                path = directory / f"{_slug(s.key)}.csv"
                s.table.to_csv(path, index=False)
                paths.append(path)
    except OSError as exc:
        raise ReportError(
            f"cannot write CSV files to {directory}: {exc.strerror or exc}; pass another --out"
        ) from None
    return paths


def default_out(run: Run, fmt: str) -> Path | None:
    """Where a format goes without ``--out``: HTML to ``RUN_DIR/report/report.html``,
    everything else to stdout (None)."""
    return run.path / "report" / "report.html" if fmt == "html" else None


def write_report(
    run: Run,
    fmt: str = "md",
    out: str | Path | None = None,
    *,
    figures_dir: str | Path | None = None,
    figures: bool = True,
    generator: str | None = None,
    pairs: tuple[tuple[str, str], ...] = (),
    compare_seed: bool | None = None,
) -> str | None:
    """Write a report of ``run`` and return its text when it goes to stdout.

    Parameters
    ----------
    fmt : {"md", "csv", "latex", "html"}
        ``md`` and ``latex``: the whole report to ``out`` (default stdout). ``csv``: the main
        table to stdout, or every table as ``out/<name>.csv`` when ``out`` (a directory) is
        given. ``html``: one self-contained file (default ``RUN_DIR/report/report.html``).
    figures_dir : path, optional
        Where figures go as PNG and SVG (default: ``RUN_DIR/report/``).
    figures : bool
        Make figures (md, latex, html).
    generator : str, optional
        The method that generated the data, for the ties table (default: from the config).
    pairs : tuple of (a, b)
        Extra paired comparisons ``a - b`` to report.

    Returns
    -------
    str or None
        The text for stdout, or None when everything went to files.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    sections = build_sections(run, generator=generator, pairs=pairs, compare_seed=compare_seed)
    if fmt == "csv":
        if out is None:
            return main_table(run, compare_seed=compare_seed).to_csv(index=False)
        write_csv(sections, out)
        return None
    out = Path(out) if out is not None else default_out(run, fmt)
    saved: dict[str, dict[str, Path]] = {}
    if figures:
        saved = save_figures(make_figures(run), figures_dir or run.path / "report")
    base = out.parent if out is not None else None
    if fmt == "md":
        text = render_markdown(run, sections, saved, base)
    elif fmt == "latex":
        text = render_latex(run, sections, saved, base)
    else:
        from .html import render_html

        text = render_html(run, sections, saved)
    if out is None:
        return text
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write {out}: {exc.strerror or exc}; pass another --out"
        ) from None
    return None
