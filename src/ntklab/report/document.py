"""Write a report: its sections (:mod:`ntklab.report.sections`) as Markdown, LaTeX, CSV or
one self-contained HTML file, with the figures saved beside it.

The HTML file has its figures embedded as base64 PNG, inline CSS, no scripts and no external
resources, so it opens in any browser without a server.
"""

from __future__ import annotations

import base64
import json
import os
import re
from html import escape
from pathlib import Path

import pandas as pd

from .figures import caption, make_figures, save_figures
from .findings import Finding, collect_findings
from .notes import run_notes
from .outputs import (
    check_figures_dir,
    check_overwrite,
    has_report_mark,
    move_tables,
    write_text,
)
from .render import html_table, latex_table, markdown_table, tex
from .runs import ReportError, Run
from .sections import Section, build_sections, header_lines
from .tables import main_table

__all__ = [
    "FORMATS",
    "render_markdown",
    "render_latex",
    "render_html",
    "write_csv",
    "write_report",
    "default_out",
]

#: Output formats of :func:`write_report`.
FORMATS = ("md", "csv", "latex", "html")

#: The figure shown right after the Findings: the first of these the run has (by name
#: prefix); the others follow the tables.
KEY_FIGURES = ("nn_vs_ntk_same_t", "curves", "nn_lin_rms_vs_width", "mean_se")


def split_key_figure(
    figures: dict[str, dict[str, Path]] | None,
) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, Path]]]:
    """``(key, rest)``: the key figure (:data:`KEY_FIGURES`, at most one) and the others."""
    figures = figures or {}
    for prefix in KEY_FIGURES:
        for name in figures:
            if name == prefix or name.startswith(prefix + "_point"):
                return {name: figures[name]}, {k: v for k, v in figures.items() if k != name}
    return {}, dict(figures)


def findings_of(sections: list[Section]) -> list[Finding]:
    """The Findings block of a report: every section's findings, by rank."""
    return collect_findings(s.findings for s in sections)


def render_markdown(
    run: Run,
    sections: list[Section],
    figures: dict[str, dict[str, Path]] | None = None,
    relative_to: Path | None = None,
) -> str:
    """The report as Markdown: the Findings, the key figure, the run, then the tables (as
    pipe tables) and the other figures (as image links)."""
    key, figures = split_key_figure(figures)
    out = [f"# ntklab report: {run.name}", ""]
    found = findings_of(sections)
    if found:
        out += ["## Findings", ""]
        for f in found:
            out.append(f"- {f.text}")
            out += [f"  - {line}" for line in f.lines]
        out.append("")
    out += _markdown_figures(key, relative_to)
    out += ["## Run", ""]
    out += [f"- {k}: {v}" for k, v in header_lines(run)]
    out.append("")
    notes = run_notes(run)
    if notes:
        out += ["**Notes**", ""] + [f"- {n}" for n in notes]
    for s in sections:
        out += ["", f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        if s.shown() is not None:
            out += [markdown_table(s.shown()), ""]
        out += [f"{n}\n" for n in s.notes]
    if figures:
        out += ["", "## Figures", ""] + _markdown_figures(figures, relative_to)
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


def _markdown_figures(figures: dict[str, dict[str, Path]], relative_to: Path | None) -> list[str]:
    out = []
    for name, paths in figures.items():
        out += [
            f"![{caption(name)}]({_rel(paths['png'], relative_to)})",
            f"*{name}*: {caption(name)} (SVG: {_rel(paths['svg'], relative_to)})",
            "",
        ]
    return out


def _rel(path: Path, base: Path | None) -> str:
    """``path`` as a link from a file in ``base`` (as given when the report goes to stdout)."""
    if base is None:
        return Path(path).as_posix()
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_posix()


def render_latex(
    run: Run,
    sections: list[Section],
    figures: dict[str, dict[str, Path]] | None = None,
    relative_to: Path | None = None,
) -> str:
    """The report as a LaTeX fragment (``booktabs`` tables, ``graphicx`` figures): the
    Findings, the key figure, the run, the tables, the other figures."""
    key, figures = split_key_figure(figures)
    out = [
        f"% ntklab report: {run.name} -- needs \\usepackage{{booktabs,graphicx}}",
        f"\\section*{{ntklab report: {tex(run.name)}}}",
    ]
    found = findings_of(sections)
    if found:
        out += [r"\subsection*{Findings}", r"\begin{itemize}"]
        for f in found:
            out.append(f"  \\item {tex(f.text)}")
            if f.lines:
                out += [r"  \begin{itemize}"]
                out += [f"    \\item {tex(line)}" for line in f.lines]
                out += [r"  \end{itemize}"]
        out.append(r"\end{itemize}")
    out += _latex_figures(key, relative_to)
    out += [r"\subsection*{Run}", r"\begin{itemize}"]
    out += [f"  \\item {tex(k)}: {tex(v)}" for k, v in header_lines(run)]
    out.append(r"\end{itemize}")
    out += [f"\\paragraph{{Note.}} {tex(n)}" for n in run_notes(run)]
    for s in sections:
        out += ["", f"\\subsection*{{{tex(s.title)}}}"]
        if s.intro:
            out.append(tex(s.intro))
        if s.shown() is not None:
            out += [r"\begin{center}", latex_table(s.shown()), r"\end{center}"]
        out += [tex(n) + "\n" for n in s.notes]
    out += _latex_figures(figures, relative_to)
    return "\n".join(out) + "\n"


def _latex_figures(figures: dict[str, dict[str, Path]], relative_to: Path | None) -> list[str]:
    out = []
    for name, paths in figures.items():
        out += [
            r"\begin{figure}[ht]",
            r"\centering",
            f"\\includegraphics[width=\\linewidth]{{{_rel(paths['png'], relative_to)}}}",
            f"\\caption{{{tex(caption(name))}}}",
            f"\\label{{fig:{name}}}",
            r"\end{figure}",
        ]
    return out


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 80rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #2b5d9b; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; color: #2b5d9b; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #d9d9d9; }
th { background: #eef3fa; text-align: left; border-bottom: 2px solid #2b5d9b; }
th { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nowrap { white-space: nowrap; }
section.findings li { margin: .25rem 0; }
tbody tr:nth-child(even) { background: #fafafa; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: .4rem .8rem;
        margin: .5rem 0; }
.small { color: #555; font-size: .9rem; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { color: #444; font-size: .9rem; }
.scroll { overflow-x: auto; }
pre { background: #f5f5f5; padding: .8rem; overflow-x: auto; font-size: .85rem; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
"""


def _table(df: pd.DataFrame, key: str) -> str:
    return f'<div class="scroll">{html_table(df, key)}</div>'


def _figure(name: str, png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure id="fig-{escape(name)}"><img alt="{escape(name)}" '
        f'src="data:image/png;base64,{data}"><figcaption><b>{escape(name)}</b>: '
        f"{escape(caption(name))}</figcaption></figure>"
    )


def render_html(
    run: Run, sections: list[Section], figures: dict[str, dict[str, Path]] | None = None
) -> str:
    """The whole report as one HTML document (figures read from the saved PNG files): the
    Findings, the key figure, the run, the tables, the other figures."""
    key, figures = split_key_figure(figures)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ntklab report: {escape(run.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>ntklab report: {escape(run.name)}</h1>",
    ]
    found = findings_of(sections)
    if found:
        parts.append('<section id="findings" class="findings"><h2>Findings</h2><ul>')
        for f in found:
            sub = "".join(f"<li>{escape(line)}</li>" for line in f.lines)
            parts.append(f"<li>{escape(f.text)}" + (f"<ul>{sub}</ul>" if sub else "") + "</li>")
        parts.append("</ul></section>")
    parts += [_figure(name, paths["png"]) for name, paths in key.items()]
    parts += [
        '<section id="run"><h2>Run</h2>',
        '<dl class="meta">'
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in header_lines(run))
        + "</dl>",
    ]
    parts += [f'<p class="note"><b>Note:</b> {escape(n)}</p>' for n in run_notes(run)]
    parts.append("</section>")
    for s in sections:
        parts.append(f'<section id="{escape(s.key)}"><h2>{escape(s.title)}</h2>')
        if s.intro:
            parts.append(f"<p>{escape(s.intro)}</p>")
        if s.shown() is not None:
            parts.append(_table(s.shown(), s.key))
        parts += [f'<p class="small">{escape(n)}</p>' for n in s.notes]
        parts.append("</section>")
    if figures:
        parts.append('<section id="figures"><h2>Figures</h2>')
        parts += [_figure(name, paths["png"]) for name, paths in figures.items()]
        parts.append("</section>")
    versions = pd.DataFrame(list(run.versions.items()), columns=["package", "version"])
    parts += [
        '<section id="versions"><h2>Versions</h2>',
        _table(versions, "versions"),
        "</section>",
        '<section id="config"><h2>Config</h2>',
        f"<pre>{escape(json.dumps(run.config, indent=2, sort_keys=True))}</pre>",
        "</section>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def write_csv(sections: list[Section], directory: str | Path) -> list[Path]:
    """Write each section's table as ``<directory>/<key>.csv`` (full precision; no guard:
    :func:`write_report` writes into a staging directory, then moves the tables)."""
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
    force: bool = False,
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
    force : bool
        Replace an existing ``out`` file (or CSV table), or same-named files in a
        ``figures_dir``, that ntklab did not write. Without it such a file stops the report
        before anything is written; a store file or SQLite database is never replaced
        (:func:`~ntklab.report.outputs.check_overwrite`).

    Returns
    -------
    str or None
        The text for stdout, or None when everything went to files.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if figures and fmt != "csv":
        check_figures_dir(figures_dir)
    target = None if fmt == "csv" else (Path(out) if out is not None else default_out(run, fmt))
    if target is not None:  # before anything is computed or written
        check_overwrite([target], ours=has_report_mark, force=force)
    sections = build_sections(run, generator=generator, pairs=pairs, compare_seed=compare_seed)
    if fmt == "csv" and out is None:
        return main_table(run, compare_seed=compare_seed).to_csv(index=False)
    if fmt == "csv":
        move_tables(lambda staging: write_csv(sections, staging), Path(out), force=force)
        return None
    out = target
    saved: dict[str, dict[str, Path]] = {}
    if figures:
        saved = save_figures(
            make_figures(run),
            figures_dir or run.path / "report",
            protect=figures_dir is not None and not force,
        )
    base = out.parent if out is not None else None
    if fmt == "md":
        text = render_markdown(run, sections, saved, base)
    elif fmt == "latex":
        text = render_latex(run, sections, saved, base)
    else:
        text = render_html(run, sections, saved)
    if out is None:
        return text
    write_text(out, text, force=force)
    return None
