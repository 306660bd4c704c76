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

from .figures import caption, make_figures, save_figures
from .tables import (
    ReportError,
    Run,
    equivalence_table,
    layer_change,
    main_table,
    nn_ntk_ratios,
    paired_differences,
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
    "tied": "tied (p > 0.05)",
    "nn_kernel_ratio": "NN / kernel",
    "seed_ratio": "seed NN / kernel",
    "same_parameterization": "same param.",
    "n_widths": "widths",
    "slope_se": "slope SE",
    "rmse": "NN RMSE",
    "ntk_same_t_rmse": "NTK RMSE (same T)",
    "ntk_inf_rmse": "NTK RMSE (T = ∞)",
}


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
        if column.endswith("_pct"):
            return f"{v:+.2f}"
        if column in ("ratio", "seed_ratio", "nn_kernel_ratio", "slope", "slope_se"):
            return f"{v:.3f}"
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


def _assumed_line(run: Run) -> str:
    """The run's assumed values on one line, grouped: ``sigma_w = 1.0 (data.generator, NN1)``.

    Keys are dotted config paths (``methods.NN1.width``); entries with the same last
    component and value are merged, listing where they apply.
    """
    if not run.assumed:
        return "Assumed values (SPEC): none recorded in this run."
    groups: dict[tuple[str, str], list[str]] = {}
    for key, value in run.assumed.items():
        where, _, name = str(key).rpartition(".")
        where = where[len("methods.") :] if where.startswith("methods.") else where
        groups.setdefault((name, _short(value)), [])
        if where:
            groups[(name, _short(value))].append(where)
    items = "; ".join(
        f"{name} = {value}" + (f" ({', '.join(where)})" if where else "")
        for (name, value), where in groups.items()
    )
    return f"Assumed values (SPEC, set by this run): {items}."


def _short(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def build_sections(
    run: Run,
    *,
    generator: str | None = None,
    pairs: tuple[tuple[str, str], ...] = (),
    compare_seed: bool | None = None,
) -> list[Section]:
    """The report's sections, in order: main table per sweep point, layer change, network /
    kernel ratios, ties with the generating kernel, requested paired differences, the
    equivalence measures and width slopes (when stored)."""
    run.require_finished()
    sections = []
    table = main_table(run, compare_seed=compare_seed)
    seed = "seed_mean" in table
    for point in run.point_ids:
        part = table[table["point"] == point].drop(columns="point")
        notes = [_assumed_line(run)]
        if seed:
            notes.insert(
                0,
                "Seed: the seed paper's table (SPEC §4, 50 trials); ours/seed = "
                "ratio of the mean RMSEs. Absolute values need not match (the seed's "
                "constants were lost); compare the patterns.",
            )
        title = "Test RMSE" + ("" if len(run.points) <= 1 else f" — {run.point_label(point)}")
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
    lc = layer_change(run, compare_seed=compare_seed)
    if len(lc):
        sections.append(
            Section(
                "layer_change",
                "Change from 1 to 2 hidden layers",
                _drop_point(run, lc),
                [
                    "change % = 100 (mean(to) − mean(from)) / mean(from); p (paired t): paired t-test "
                    "of the per-trial difference."
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
                    "depth; same param.: the kernel is the network's own NTK or NNGP."
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
                [
                    "mean diff = mean over trials of RMSE(method) − RMSE(generator) (paired, same "
                    "data); tied: two-sided paired t-test p > 0.05 (no multiple-comparison "
                    "correction); the Wilcoxon signed-rank p-value is shown alongside. Tied means "
                    "the trials could not tell the two apart, which with few trials is weak "
                    "evidence of equality."
                ],
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
