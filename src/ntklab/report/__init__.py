"""Reports of stored runs: tables with standard errors beside the seed's, the paper's
analyses computed from the rows, the attribution of the seed's NTK → NN gap and verdicts on
its claims, figures (PNG and SVG) and a self-contained HTML file.

Modules, each importing only those above it: ``reference`` (the seed's published numbers),
``configs`` (the stored config read back as the schema's models),
``stats`` (paired tests, TOST, Holm); ``runs`` (a stored run, :func:`load_run`, settings); ``notes`` (what is incomplete);
``protocol`` (is it the seed's experiment, which method generated the data); ``tables`` (main
table, layer change, ratios, paired differences); ``equivalence`` (TOST ties, width sweeps);
``attribution`` (the seed's NTK → NN gap one cause at a time, each network beside its NTK
at the same time), ``verdicts`` (on the seed's claims); ``figures``; ``render`` (cells and
tables as Markdown, LaTeX, HTML via pandas); ``phase`` and ``phase_claims`` (the
phase diagram of a width × lazy_scale / lr sweep: cells, drift exponents, crossovers,
verdicts on its anchor claims); ``phase_figures`` (its heatmaps); ``sections`` (what a
report shows);
``document`` (whole reports in each format, :func:`write_report`).

>>> from ntklab.report import load_run, main_table, layer_change   # doctest: +SKIP
>>> run = load_run("runs/paper-quick")                              # doctest: +SKIP
>>> main_table(run)                                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

#: Public name -> the submodule of :mod:`ntklab.report` that defines it (imported on first
#: access, so that importing the package loads neither pandas nor matplotlib).
_LAZY = {
    "FORMATS": "document",
    "build_sections": "sections",
    "write_report": "document",
    "boxplot": "figures",
    "discrepancy_vs_width": "figures",
    "kernel_drift_vs_width": "figures",
    "make_figures": "figures",
    "mean_se_plot": "figures",
    "metric_vs_width": "figures",
    "nn_vs_ntk_same_t": "figures",
    "save_figures": "figures",
    "training_curves": "figures",
    "ATTRIBUTION_CHAIN": "reference",
    "SEED_TABLE": "reference",
    "attribution_chain": "reference",
    "seed_table": "reference",
    "CLAIMS": "verdicts",
    "Verdict": "verdicts",
    "attribution_table": "attribution",
    "evaluate_claims": "verdicts",
    "same_time_pairs": "attribution",
    "same_time_table": "attribution",
    "seed_verdicts": "verdicts",
    "verdict_details": "verdicts",
    "holm": "stats",
    "log_mean_contrast": "stats",
    "ratio_of_means": "stats",
    "tost": "stats",
    "tost_paired": "stats",
    "ReportError": "runs",
    "Run": "runs",
    "compares_with_seed": "protocol",
    "equivalence_table": "equivalence",
    "is_seed_protocol": "protocol",
    "layer_change": "tables",
    "load_run": "runs",
    "main_table": "tables",
    "mean_se": "stats",
    "nn_ntk_ratios": "tables",
    "paired_differences": "tables",
    "paired_stats": "stats",
    "report_settings": "runs",
    "run_notes": "notes",
    "resolve_generator": "protocol",
    "ties_with_generator": "equivalence",
    "tost_table": "equivalence",
    "width_slopes": "equivalence",
    "drift_exponents": "phase",
    "has_phase_grid": "phase",
    "phase_cells": "phase",
    "phase_grid": "phase",
    "phase_details": "phase_claims",
    "phase_verdicts": "phase_claims",
    "phase_heatmap": "phase_figures",
}

__all__ = [
    "ATTRIBUTION_CHAIN",
    "CLAIMS",
    "FORMATS",
    "ReportError",
    "Run",
    "SEED_TABLE",
    "Verdict",
    "attribution_chain",
    "attribution_table",
    "boxplot",
    "compares_with_seed",
    "evaluate_claims",
    "holm",
    "is_seed_protocol",
    "log_mean_contrast",
    "nn_vs_ntk_same_t",
    "ratio_of_means",
    "report_settings",
    "run_notes",
    "same_time_pairs",
    "same_time_table",
    "seed_verdicts",
    "tost",
    "tost_paired",
    "tost_table",
    "verdict_details",
    "build_sections",
    "discrepancy_vs_width",
    "equivalence_table",
    "kernel_drift_vs_width",
    "layer_change",
    "load_run",
    "main_table",
    "make_figures",
    "mean_se",
    "mean_se_plot",
    "metric_vs_width",
    "nn_ntk_ratios",
    "paired_differences",
    "paired_stats",
    "resolve_generator",
    "save_figures",
    "seed_table",
    "ties_with_generator",
    "training_curves",
    "width_slopes",
    "write_report",
    "drift_exponents",
    "has_phase_grid",
    "phase_cells",
    "phase_grid",
    "phase_details",
    "phase_verdicts",
    "phase_heatmap",
]


#: Submodules reachable as attributes (``ntklab.report.tables``) without importing them first.
_SUBMODULES = frozenset(
    (
        "attribution",
        "configs",
        "document",
        "equivalence",
        "figures",
        "notes",
        "protocol",
        "reference",
        "render",
        "runs",
        "sections",
        "stats",
        "tables",
        "verdicts",
        "phase",
        "phase_claims",
        "phase_figures",
    )
)


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY, _SUBMODULES)


if TYPE_CHECKING:  # what static analysers and IDEs see
    from .attribution import attribution_table, same_time_pairs, same_time_table
    from .document import FORMATS, write_report
    from .equivalence import equivalence_table, ties_with_generator, tost_table, width_slopes
    from .figures import (
        boxplot,
        discrepancy_vs_width,
        kernel_drift_vs_width,
        make_figures,
        mean_se_plot,
        metric_vs_width,
        nn_vs_ntk_same_t,
        save_figures,
        training_curves,
    )
    from .notes import run_notes
    from .phase import drift_exponents, has_phase_grid, phase_cells, phase_grid
    from .phase_claims import phase_details, phase_verdicts
    from .phase_figures import phase_heatmap
    from .protocol import compares_with_seed, is_seed_protocol, resolve_generator
    from .reference import ATTRIBUTION_CHAIN, SEED_TABLE, attribution_chain, seed_table
    from .runs import ReportError, Run, load_run, report_settings
    from .sections import build_sections
    from .stats import (
        holm,
        log_mean_contrast,
        mean_se,
        paired_stats,
        ratio_of_means,
        tost,
        tost_paired,
    )
    from .tables import (
        layer_change,
        main_table,
        nn_ntk_ratios,
        paired_differences,
    )
    from .verdicts import CLAIMS, Verdict, evaluate_claims, seed_verdicts, verdict_details
