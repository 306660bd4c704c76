"""Reports of stored runs: tables with standard errors beside the seed's, the paper's
analyses computed from the rows, figures (PNG and SVG) and a self-contained HTML file.

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
    save_figures,
    training_curves,
)
from .reference import SEED_TABLE, seed_table
from .tables import (
    ReportError,
    Run,
    equivalence_table,
    layer_change,
    load_run,
    main_table,
    mean_se,
    nn_ntk_ratios,
    paired_differences,
    paired_stats,
    resolve_generator,
    ties_with_generator,
    width_slopes,
)

__all__ = [
    "FORMATS",
    "ReportError",
    "Run",
    "SEED_TABLE",
    "boxplot",
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
