"""Reports of stored runs: tables with standard errors beside the seed's, the paper's
analyses computed from the rows, the attribution of the seed's NTK → NN gap and verdicts on
its claims, figures (PNG and SVG) and a self-contained HTML file.

>>> from ntklab.report import load_run, main_table, layer_change   # doctest: +SKIP
>>> run = load_run("runs/paper-quick")                              # doctest: +SKIP
>>> main_table(run)                                                 # doctest: +SKIP
"""

from .document import FORMATS, build_sections, write_report
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
from .reference import ATTRIBUTION_CHAIN, SEED_TABLE, attribution_chain, seed_table
from .seed import (
    CLAIMS,
    Verdict,
    attribution_table,
    evaluate_claims,
    same_time_pairs,
    same_time_table,
    seed_verdicts,
    verdict_details,
)
from .stats import holm, log_mean_contrast, ratio_of_means, tost, tost_paired
from .tables import (
    REPORT_DEFAULTS,
    ReportError,
    Run,
    compares_with_seed,
    equivalence_table,
    is_seed_protocol,
    layer_change,
    load_run,
    main_table,
    mean_se,
    nn_ntk_ratios,
    paired_differences,
    paired_stats,
    report_settings,
    resolve_generator,
    ties_with_generator,
    tost_table,
    width_slopes,
)

__all__ = [
    "ATTRIBUTION_CHAIN",
    "CLAIMS",
    "FORMATS",
    "REPORT_DEFAULTS",
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
]
