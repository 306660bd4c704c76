"""Text of report tables: each cell formatted once (:func:`format_value`, with readable
column names), then the table rendered by pandas as Markdown (:meth:`DataFrame.to_markdown`),
LaTeX (:meth:`Styler.to_latex <pandas.io.formats.style.Styler.to_latex>`, ``booktabs``
rules) or HTML (:meth:`Styler.to_html <pandas.io.formats.style.Styler.to_html>`).

Numbers (and ``mean ± se`` texts) are right-aligned in every format.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

__all__ = [
    "DISPLAY_NAMES",
    "MERGED_COLUMNS",
    "decimals_for",
    "format_mean_se",
    "format_estimate_ci",
    "format_value",
    "display_frame",
    "numeric_columns",
    "plus_minus",
    "markdown_table",
    "latex_table",
    "html_table",
    "tex",
]

#: Column name -> the header a rendered table shows (other columns keep their name).
DISPLAY_NAMES = {
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
    "missing": "missing",
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


def decimals_for(se: float, digits: int = 2) -> int | None:
    """Decimal places that show ``se`` to ``digits`` significant digits (negative: round to
    tens, hundreds, ...); None when ``se`` is not a positive finite number."""
    if not (isinstance(se, int | float) and math.isfinite(se) and se > 0):
        return None
    places = digits - 1 - math.floor(math.log10(se))
    if abs(round(se, places)) >= 10 ** (digits - places):  # 0.0996 -> 0.10: one place fewer
        places -= 1
    return places


def _fixed(value: float, places: int) -> str:
    if places <= 0:
        return f"{round(value, places):.0f}"
    return f"{value:.{places}f}"


def format_mean_se(mean: Any, se: Any, *, sign: bool = False) -> str:
    """``mean ± se`` with ``se`` to its first two significant digits and ``mean`` to the same
    decimal place: ``format_mean_se(0.20861, 0.0038754) == "0.2086 ± 0.0039"``.

    Without a usable ``se`` (NaN, zero, one trial) the mean alone at 5 significant digits;
    NaN mean: ``–``. ``sign``: the mean with its sign (a change)."""
    m = math.nan if mean is None else float(mean)
    if not math.isfinite(m):
        return "–"
    s = math.nan if se is None else float(se)
    places = decimals_for(s)
    if places is None:
        text = f"{m:+.5g}" if sign else f"{m:.5g}"
        return text if s != 0 else f"{text} ± 0"
    text = _fixed(m, places)
    if sign and not text.startswith("-"):
        text = "+" + text
    return f"{text} ± {_fixed(s, places)}"


def format_estimate_ci(est: Any, low: Any, high: Any, *, sign: bool = False) -> str:
    """``est [low, high]`` at the precision of the interval's half-width taken as 1.96
    standard errors, that SE to two significant digits: ``0.0323 [0.0306, 0.0340]``
    (:func:`format_mean_se`'s rule). ``sign``: the estimate with its sign (a change)."""
    e = math.nan if est is None else float(est)
    if not math.isfinite(e):
        return "–"
    lo = math.nan if low is None else float(low)
    hi = math.nan if high is None else float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{e:+.5g}" if sign else f"{e:.5g}"
    places = decimals_for((hi - lo) / (2 * 1.96))
    if places is None:  # a zero-width interval
        return (f"{e:+.5g}" if sign else f"{e:.5g}") + f" [{lo:.5g}, {hi:.5g}]"
    text = _fixed(e, places)
    if sign and not text.startswith("-"):
        text = "+" + text
    return f"{text} [{_fixed(lo, places)}, {_fixed(hi, places)}]"


#: Column groups shown merged in Markdown, LaTeX and HTML (CSV keeps each column at full
#: precision): ``(shown name, estimate, se)`` merged by :func:`format_mean_se`, and
#: ``(shown name, estimate, ci_low, ci_high)`` by :func:`format_estimate_ci`.
MERGED_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("mean RMSE ± SE", "mean", "se"),
    ("seed mean ± SE", "seed_mean", "seed_se"),
    ("change [95 % CI]", "change", "ci_low", "ci_high"),
    ("mean diff [95 % CI]", "mean_diff", "ci_low", "ci_high"),
    ("ours [95 % CI]", "estimate", "ci_low", "ci_high"),
    ("change % [95 % CI]", "change_pct", "change_ci_low", "change_ci_high"),
    ("NN / kernel [95 % CI]", "nn_kernel_ratio", "ratio_ci_low", "ratio_ci_high"),
)

_SIGNED = frozenset({"change", "mean_diff", "change_pct"})


_RATIO_COLUMNS = frozenset(
    {"ratio", "seed_ratio", "nn_kernel_ratio", "ratio_ci_low", "ratio_ci_high", "slope", "slope_se"}
)
_COUNT_COLUMNS = frozenset({"n", "n_pairs", "diverged", "failed", "missing", "depth"})


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


def merge_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each group of :data:`MERGED_COLUMNS` it has in full merged into one text
    column (at the estimate's place, named as shown), right-aligned; other columns as they
    are. A frame already merged (``attrs["numeric"]``) is returned as it is."""
    if "numeric" in df.attrs:
        return df
    out = df.copy()
    merged = []
    for shown, *cols in MERGED_COLUMNS:
        if not set(cols) <= set(out.columns) or shown in out.columns:
            continue
        sign = cols[0] in _SIGNED
        if len(cols) == 2:
            text = [
                format_mean_se(m, e, sign=sign)
                for m, e in zip(out[cols[0]], out[cols[1]], strict=True)
            ]
        else:
            text = [
                format_estimate_ci(e, lo, hi, sign=sign)
                for e, lo, hi in zip(out[cols[0]], out[cols[1]], out[cols[2]], strict=True)
            ]
        out[cols[0]] = text
        out = out.drop(columns=cols[1:]).rename(columns={cols[0]: shown})
        merged.append(shown)
    out.attrs["numeric"] = merged
    return out


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as text: the groups of :data:`MERGED_COLUMNS` merged (:func:`merge_columns`),
    every other cell by :func:`format_value`, columns by :data:`DISPLAY_NAMES`."""
    df = merge_columns(df)
    keep = set(df.attrs.get("numeric", ()))
    rows = [
        [v if c in keep else format_value(c, v) for c, v in zip(df.columns, rec, strict=True)]
        for rec in df.itertuples(index=False, name=None)
    ]
    return pd.DataFrame(rows, columns=[DISPLAY_NAMES.get(c, c) for c in df.columns], dtype=object)


def plus_minus(df: pd.DataFrame) -> pd.DataFrame:
    """Merge each ``<metric>`` / ``<metric>_se`` column pair into one ``mean ± se`` text
    (:func:`format_mean_se`), then the groups of :data:`MERGED_COLUMNS`."""
    out = df.copy()
    merged = []
    for col in df.columns:
        if f"{col}_se" in df.columns and col != "mean":
            out[col] = [format_mean_se(m, e) for m, e in zip(df[col], df[f"{col}_se"], strict=True)]
            out = out.drop(columns=f"{col}_se")
            merged.append(col)
    out = merge_columns(out)
    out.attrs["numeric"] = merged + list(out.attrs["numeric"])
    return out


def numeric_columns(df: pd.DataFrame) -> list[bool]:
    """Right-align numbers (and merged ``mean ± se`` texts)."""
    df = merge_columns(df)
    extra = set(df.attrs.get("numeric", ()))
    return [
        c in extra
        or (pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]))
        for c in df.columns
    ]


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table (``|`` in cells escaped), numbers right-aligned."""
    text = display_frame(df).map(lambda c: c.replace("|", "\\|"))
    text.columns = [c.replace("|", "\\|") for c in text.columns]
    align = ["right" if num else "left" for num in numeric_columns(df)]
    return text.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)


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


def tex(text: str) -> str:
    """``text`` with LaTeX's special characters escaped and the report's symbols in math mode."""
    parts = str(text).split("√n")
    return r"$\sqrt{n}$".join("".join(_LATEX_ESC.get(ch, ch) for ch in p) for p in parts)


def latex_table(df: pd.DataFrame) -> str:
    """A ``booktabs`` tabular (``\\toprule``, ``\\midrule``, ``\\bottomrule``)."""
    text = display_frame(df).map(tex)
    text.columns = [tex(c) for c in text.columns]
    align = "".join("r" if num else "l" for num in numeric_columns(df))
    return text.style.hide(axis="index").to_latex(column_format=align, hrules=True).rstrip("\n")


#: Text columns whose cells are at most this long are never wrapped in HTML (method names
#: like ``NTKJ1-corrected``); longer texts (a step, a verdict's numbers) wrap.
NOWRAP_CHARS = 32


def html_table(df: pd.DataFrame, key: str = "table") -> str:
    """An HTML table (id ``T_<key>``, cells escaped, numbers in ``td.num``, short texts in
    ``td.nowrap``), no styles."""
    text = display_frame(df)
    short = [
        bool(len(text)) and int(text[c].astype(str).str.len().max()) <= NOWRAP_CHARS
        for c in text.columns
    ]
    kinds = [
        "num" if num else ("nowrap" if s else "")
        for num, s in zip(numeric_columns(df), short, strict=True)
    ]
    classes = pd.DataFrame([kinds] * len(text), index=text.index, columns=text.columns)
    from pandas.io.formats.style import Styler

    styler = Styler(text, uuid=re.sub(r"[^A-Za-z0-9_-]+", "_", key), cell_ids=False)
    styler = styler.hide(axis="index").format(escape="html").format_index(escape="html", axis=1)
    html = styler.set_td_classes(classes).to_html()
    return re.sub(r'<style type="text/css">\s*</style>\s*', "", html).strip()
