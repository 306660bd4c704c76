"""The public names of :mod:`ntklab.report`, the one table of them (see ``ntklab/__init__.pyi``)."""

from . import (
    attribution,
    configs,
    document,
    equivalence,
    figures,
    notes,
    phase,
    phase_claims,
    phase_figures,
    protocol,
    reference,
    render,
    runs,
    sections,
    stats,
    tables,
    verdicts,
)
from .attribution import attribution_table as attribution_table
from .attribution import same_time_pairs as same_time_pairs
from .attribution import same_time_table as same_time_table
from .document import FORMATS as FORMATS
from .document import write_report as write_report
from .equivalence import equivalence_table as equivalence_table
from .equivalence import ties_with_generator as ties_with_generator
from .equivalence import tost_table as tost_table
from .equivalence import width_slopes as width_slopes
from .figures import boxplot as boxplot
from .figures import discrepancy_vs_width as discrepancy_vs_width
from .figures import kernel_drift_vs_width as kernel_drift_vs_width
from .figures import make_figures as make_figures
from .figures import mean_se_plot as mean_se_plot
from .figures import metric_vs_width as metric_vs_width
from .figures import nn_vs_ntk_same_t as nn_vs_ntk_same_t
from .figures import save_figures as save_figures
from .figures import training_curves as training_curves
from .notes import run_notes as run_notes
from .phase import drift_exponents as drift_exponents
from .phase import has_phase_grid as has_phase_grid
from .phase import phase_cells as phase_cells
from .phase import phase_grid as phase_grid
from .phase_claims import phase_details as phase_details
from .phase_claims import phase_verdicts as phase_verdicts
from .phase_figures import phase_heatmap as phase_heatmap
from .protocol import compares_with_seed as compares_with_seed
from .protocol import is_seed_protocol as is_seed_protocol
from .protocol import resolve_generator as resolve_generator
from .reference import ATTRIBUTION_CHAIN as ATTRIBUTION_CHAIN
from .reference import SEED_TABLE as SEED_TABLE
from .reference import attribution_chain as attribution_chain
from .reference import seed_table as seed_table
from .runs import ReportError as ReportError
from .runs import Run as Run
from .runs import load_run as load_run
from .runs import report_settings as report_settings
from .sections import build_sections as build_sections
from .stats import holm as holm
from .stats import log_mean_contrast as log_mean_contrast
from .stats import mean_se as mean_se
from .stats import paired_stats as paired_stats
from .stats import ratio_of_means as ratio_of_means
from .stats import tost as tost
from .stats import tost_paired as tost_paired
from .tables import layer_change as layer_change
from .tables import main_table as main_table
from .tables import nn_ntk_ratios as nn_ntk_ratios
from .tables import paired_differences as paired_differences
from .verdicts import CLAIMS as CLAIMS
from .verdicts import Verdict as Verdict
from .verdicts import evaluate_claims as evaluate_claims
from .verdicts import seed_verdicts as seed_verdicts
from .verdicts import verdict_details as verdict_details
