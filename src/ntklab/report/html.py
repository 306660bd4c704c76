"""A self-contained HTML report: one file, figures embedded as base64 PNG, inline CSS, no
scripts and no external resources, so it opens in any browser without a server."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import pandas as pd

from .document import Section, _display, _numeric, header_lines
from .figures import caption
from .tables import Run

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #2b5d9b; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; color: #2b5d9b; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { padding: .3rem .7rem; border-bottom: 1px solid #d9d9d9; }
th { background: #eef3fa; text-align: left; border-bottom: 2px solid #2b5d9b; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
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


def _table(df: pd.DataFrame) -> str:
    header, rows = _display(df)
    numeric = _numeric(df)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(c)}</td>' if num else f"<td>{escape(c)}</td>"
            for c, num in zip(r, numeric, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


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
    """The whole report as one HTML document (figures read from the saved PNG files)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ntklab report: {escape(run.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>ntklab report: {escape(run.name)}</h1>",
        '<dl class="meta">'
        + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in header_lines(run))
        + "</dl>",
    ]
    parts += [f'<p class="note"><b>Note:</b> {escape(n)}</p>' for n in run.notes()]
    for s in sections:
        parts.append(f'<section id="{escape(s.key)}"><h2>{escape(s.title)}</h2>')
        if s.intro:
            parts.append(f"<p>{escape(s.intro)}</p>")
        if s.shown() is not None:
            parts.append(_table(s.shown()))
        parts += [f'<p class="small">{escape(n)}</p>' for n in s.notes]
        parts.append("</section>")
    if figures:
        parts.append('<section id="figures"><h2>Figures</h2>')
        parts += [_figure(name, paths["png"]) for name, paths in figures.items()]
        parts.append("</section>")
    versions = pd.DataFrame(list(run.versions.items()), columns=["package", "version"])
    parts += [
        '<section id="versions"><h2>Versions</h2>',
        _table(versions),
        "</section>",
        '<section id="config"><h2>Config</h2>',
        f"<pre>{escape(json.dumps(run.config, indent=2, sort_keys=True))}</pre>",
        "</section>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
