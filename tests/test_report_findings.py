"""The report's Findings block (first, from the run's own numbers), the precision of its
numbers (mean ± SE to the SE's two significant digits; the CSV at full precision) and its
HTML main table at 1400 px in headless Chromium."""

from __future__ import annotations

import io
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import md_rows, write_paper_run
from test_report_seed import _holding_values, write_seed_run

from ntklab.report import (
    attribution_table,
    build_sections,
    load_run,
    main_table,
    same_time_table,
    write_report,
)
from ntklab.report.findings import Finding, collect_findings
from ntklab.report.render import (
    decimals_for,
    format_estimate_ci,
    format_mean_se,
    markdown_table,
)
from ntklab.report.stats import paired_t


# ---- one formatting rule ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mean", "se", "text"),
    [
        (0.20861, 0.0038754, "0.2086 ± 0.0039"),  # the README's NN1 row
        (0.063147, 0.00045, "0.06315 ± 0.00045"),
        (0.1, 0.0996, "0.10 ± 0.10"),  # the SE rounds up to a new digit: one place fewer
        (123.4, 56.7, "123 ± 57"),
        (12346.0, 678.0, "12350 ± 680"),
        (-0.01, 0.002, "-0.0100 ± 0.0020"),
        (0.5, math.nan, "0.5"),  # one trial: no SE
        (math.nan, 0.1, "–"),
    ],
)
def test_mean_se_to_the_se_two_significant_digits(mean, se, text):
    assert format_mean_se(mean, se) == text


def test_mean_se_rule_holds_for_any_scale():
    """The SE shows exactly two significant digits, the mean ends at the SE's last digit."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        se = 10 ** rng.uniform(-8, 4)
        mean = rng.normal(0, 50 * se)
        m_text, s_text = format_mean_se(mean, se).split(" ± ")
        places = decimals_for(se)
        digits = s_text.replace(".", "").lstrip("0")
        assert len(digits) - max(-places, 0) == 2 or (places < 0 and len(digits) <= 2 - places)
        assert abs(float(s_text) - se) <= 0.5 * 10.0**-places * (1 + 1e-9)
        assert abs(float(m_text) - mean) <= 0.5 * 10.0**-places * (1 + 1e-9)
        frac = lambda t: len(t.split(".")[1]) if "." in t else 0  # noqa: E731
        assert frac(m_text) == frac(s_text) == max(places, 0)


def test_estimate_ci_uses_the_interval_as_its_se():
    # half-width 0.0017 -> SE 0.00087 -> 5 places
    assert format_estimate_ci(0.0323, 0.0306, 0.0340) == "0.03230 [0.03060, 0.03400]"
    assert format_estimate_ci(0.0015, 0.0001, 0.0029, sign=True) == "+0.00150 [0.00010, 0.00290]"
    assert format_estimate_ci(3.242, 3.192, 3.294) == "3.242 [3.192, 3.294]"
    assert format_estimate_ci(1.5, math.nan, math.nan) == "1.5"


def test_tables_merge_mean_and_se_and_csv_keeps_full_precision(tmp_path):
    df = pd.DataFrame({"method": ["NN1"], "n": [12], "mean": [0.20861234], "se": [0.0038754]})
    rows = md_rows(markdown_table(df))
    assert rows == [["method", "n", "mean RMSE ± SE"], ["NN1", "12", "0.2086 ± 0.0039"]]
    run = load_run(write_paper_run(tmp_path / "r"))
    write_report(run, "csv", tmp_path / "csv")
    csv = pd.read_csv(tmp_path / "csv" / "main.csv")
    np.testing.assert_array_equal(csv["mean"].to_numpy(), main_table(run)["mean"].to_numpy())


# ---- the Findings block ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    path = write_seed_run(tmp_path_factory.mktemp("f") / "seed", _holding_values(12), n_trials=12)
    return load_run(path)


def _findings(md: str) -> list[str]:
    block = md.split("## Findings\n\n", 1)[1].split("\n\n", 1)[0]
    return block.splitlines()


def test_seed_findings_come_first_and_carry_the_runs_numbers(seed_run):
    md = write_report(seed_run, "md", figures=False)
    assert md.index("## Findings") < md.index("## Run") < md.index("## Test RMSE")
    lines = _findings(md)
    top = [line for line in lines if line.startswith("- ")]
    assert 3 <= len(top) <= 6
    main = main_table(seed_run)
    seed_rows = main[np.isfinite(main["z"].astype(float))]
    worst = seed_rows.loc[seed_rows["z"].abs().idxmax()]
    assert top[0] == (
        f"- All {len(seed_rows)} rows of the seed's table that this run has are reproduced: "
        "each mean test RMSE lies within 3 combined standard errors of the seed's (largest "
        f"|z| = {abs(worst['z']):.2f}, {worst['method']})."
    )
    # one line per claim, under the verdict sentence
    claims = [line for line in lines if line.startswith("  - ")]
    assert len(claims) == 4 and all(": reproduced (" in c for c in claims)
    assert top[1] == "- The seed's 4 claims (§4.2), each judged by a declared test: 4 reproduced:"
    # the largest attribution step, recomputed from the attribution table
    att = attribution_table(seed_run)
    steps = att[att["share_pct"].notna() & ~att["step"].str.startswith("total")]
    d1 = steps[steps["depth"] == 1]
    big = d1.loc[d1["share_pct"].abs().idxmax()]
    assert f"at depth 1 it is “{big['step']}”" in top[2]
    assert f"{big['share_pct']:.0f} % of the gap" in top[2]
    # NN vs its own NTK at the same time: the paired difference in % of the NTK's mean
    st = same_time_table(seed_run)
    one = st[st["network"] == "NN1"]
    d = paired_t(one["difference"].to_numpy(float))
    base = one["ntk_same_t_rmse"].mean()
    want = format_estimate_ci(
        100 * d["mean"] / base, 100 * d["ci_low"] / base, 100 * d["ci_high"] / base, sign=True
    )
    assert f"NN1 − NTK-NN1-T = {want} % (12 trials)" in top[3]
    assert top[-1] == "- 12 of 12 trials finished; no network diverged and no method failed."


def test_findings_of_a_paper_run(tmp_path):
    run = load_run(write_paper_run(tmp_path / "r"))
    md = write_report(run, "md", figures=False)
    lines = _findings(md)
    main = main_table(run)
    best = main.loc[main["mean"].idxmin()]
    assert lines[0].startswith(
        f"- Lowest mean test RMSE: {best['method']} "
        f"({format_mean_se(best['mean'], best['se'])}, {int(best['n'])} trials)"
    )
    assert lines[-1] == (
        "- 6 of 8 trials finished, 1 failed; NN1 diverged in 1 trial, K1 raised an error in 1 "
        "trial (left out of its mean)."
    )


def test_findings_in_every_text_format(seed_run, tmp_path):
    """The Findings, then the key figure, then the run and the tables, then the other
    figures (figures given as saved files: no plotting here)."""
    from ntklab.report.document import render_html, render_latex, render_markdown

    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG fake")
    figs = {name: {"png": png, "svg": png} for name in ("boxplot", "nn_vs_ntk_same_t", "mean_se")}
    sections = build_sections(seed_run)
    md = render_markdown(seed_run, sections, figs, tmp_path)
    assert md.index("## Findings") < md.index("*nn_vs_ntk_same_t*") < md.index("## Run")
    assert md.index("## Test RMSE") < md.index("## Figures") < md.index("*boxplot*")
    assert md.count("*nn_vs_ntk_same_t*") == 1
    tex = render_latex(seed_run, sections, figs, tmp_path)
    assert tex.index(r"\subsection*{Findings}") < tex.index("fig:nn_vs_ntk_same_t")
    assert tex.index("fig:nn_vs_ntk_same_t") < tex.index(r"\subsection*{Run}")
    html = render_html(seed_run, sections, figs)
    assert html.index('id="findings"') < html.index('id="fig-nn_vs_ntk_same_t"')
    assert (
        html.index('id="fig-nn_vs_ntk_same_t"') < html.index('id="run"') < html.index('id="main"')
    )
    assert html.count('id="fig-nn_vs_ntk_same_t"') == 1 and 'id="fig-boxplot"' in html


def test_a_section_contributes_findings_by_rank(seed_run):
    sections = build_sections(seed_run)
    extra = Finding("a new section's sentence", rank=15)
    sections[-1].findings.append(extra)
    found = collect_findings(s.findings for s in sections)
    assert found[1] is extra and len(found) <= 6


# ---- the HTML main table at 1400 px ----------------------------------------------------------
_MEASURE = """<script>
const cells = document.querySelectorAll('#T_main th, #T_main td');
let most = 0, worst = '';
for (const cell of cells) {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
  if (tops.size > most) { most = tops.size; worst = cell.textContent; }
}
const table = document.querySelector('#T_main').getBoundingClientRect();
document.body.setAttribute('data-lines', most);
document.body.setAttribute('data-worst', worst);
document.body.setAttribute('data-overflow', table.right > window.innerWidth ? 1 : 0);
</script></body>"""


def test_html_main_table_is_readable_at_1400px(seed_run, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("no /usr/bin/chromium: headless rendering not checked")
    path = tmp_path / "r.html"
    write_report(seed_run, "html", path, figures=False)
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text(encoding="utf-8").replace("</body>", _MEASURE), "utf-8")
    cmd = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--dump-dom",
           probe.resolve().as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    lines = int(re.search(r'data-lines="(\d+)"', dom).group(1))
    worst = re.search(r'data-worst="([^"]*)"', dom).group(1)
    assert lines == 1, f"{worst!r} wraps into {lines} lines"
    assert re.search(r'data-overflow="(\d)"', dom).group(1) == "0"
    assert "NTKJ1-corrected" in io.StringIO(dom).read()


def test_a_diverged_linearization_is_no_ratio_of_zero():
    # above the critical rate the NTK prediction at the same time is inf: no 0.000x ratio
    from ntklab.report.findings import equivalence_finding

    eq = pd.DataFrame(
        {
            "method": ["lazy", "catapult"],
            "width": [1024, 1024],
            "rmse": [0.30, 0.25],
            "ntk_same_t_rmse": [0.29, math.inf],
        }
    )
    text = equivalence_finding(eq).text
    assert "0.000×" not in text and "catapult" not in text
    assert f"{0.30 / 0.29:.3f}×" in text


def test_notes_of_a_grid_are_one_line_per_method():
    # a grid of many points: a method's diverged or missing trials in one line with their
    # points and counts, never one line per point (the per-cell counts are in the tables)
    from ntklab.report import notes

    class Grid:
        points = [{}] * 20

    where = notes._where(Grid(), {p: 2 for p in range(12)})
    assert (
        where == " at 12 points (0 (2), 1 (2), 2 (2), 3 (2), 4 (2), 5 (2), 6 (2), 7 (2), +4 more)"
    )
    assert notes._where(Grid(), {5: 1}) == " at point 5"

    class One:
        points = [{}]

    assert notes._where(One(), {0: 3}) == ""
