"""ntklab: test neural tangent kernel theory against real trained networks.

The public API is re-exported here; the modules follow the data flow
config -> data -> architecture (kernels + networks) -> training / predict -> study -> store -> report.

``import ntklab`` imports none of them: each name below (and each submodule, e.g.
``ntklab.data``) is imported on first use, so that the command line and ``import ntklab``
start fast (torch, scikit-learn, pandas and matplotlib are loaded only by what needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

__version__ = "0.1.0"

#: Public name -> the submodule that defines it (imported on first access).
_LAZY = {
    "Architecture": "architecture",
    "Parameterization": "parameterizations",
    "PARAMETERIZATIONS": "parameterizations",
    "FullyConnectedNetwork": "networks",
    "default_device": "networks",
    "KernelRegressor": "regressor",
    "NNGPKernel": "sklearn_kernels",
    "NTKKernel": "sklearn_kernels",
    "gradient_descent_mse": "predict",
    "gradient_descent_mse_ensemble": "predict",
    "TrainResult": "training",
    "auto_lr": "training",
    "train": "training",
    "train_ensemble": "training",
    "EquivalenceResult": "equivalence",
    "equivalence_metrics": "equivalence",
    "empirical_ntk": "empirical",
    "monte_carlo_nngp": "monte_carlo",
    "monte_carlo_ntk": "monte_carlo",
    "linearize": "linearization",
    "track": "tracking",
    "laplacian": "kernels",
    "rbf": "kernels",
    "PublishedKernel": "published",
    "PUBLISHED_KERNELS": "published",
    "NORMALIZATIONS": "published",
    "published_kernel": "published",
    "published_kernels": "published",
    "load_run": "report",
    "main_table": "report",
    "layer_change": "report",
    "nn_ntk_ratios": "report",
    "paired_differences": "report",
    "ties_with_generator": "report",
}

#: Submodules reachable as attributes (``ntklab.data``) without importing them first.
_SUBMODULES = frozenset(
    "architecture cli config data empirical equivalence execution kernels layers linalg monte_carlo "
    "networks predict published regimes regressor report sklearn_kernels store study training "
    "verify torch_ntk model_checks ntk_contract ntk_vector linearization tracking".split()
)

__all__ = [
    "data",
    "Architecture",
    "Parameterization",
    "PARAMETERIZATIONS",
    "FullyConnectedNetwork",
    "KernelRegressor",
    "NNGPKernel",
    "NTKKernel",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "TrainResult",
    "auto_lr",
    "train",
    "train_ensemble",
    "EquivalenceResult",
    "equivalence_metrics",
    "empirical_ntk",
    "monte_carlo_nngp",
    "monte_carlo_ntk",
    "linearize",
    "track",
    "default_device",
    "laplacian",
    "rbf",
    "PublishedKernel",
    "PUBLISHED_KERNELS",
    "NORMALIZATIONS",
    "published_kernel",
    "published_kernels",
    "load_run",
    "main_table",
    "layer_change",
    "nn_ntk_ratios",
    "paired_differences",
    "ties_with_generator",
    "__version__",
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY, _SUBMODULES)


if TYPE_CHECKING:  # what static analysers and IDEs see
    from . import data
    from .architecture import Architecture
    from .empirical import empirical_ntk
    from .equivalence import EquivalenceResult, equivalence_metrics
    from .kernels import laplacian, rbf
    from .linearization import linearize
    from .monte_carlo import monte_carlo_nngp, monte_carlo_ntk
    from .networks import FullyConnectedNetwork, default_device
    from .parameterizations import PARAMETERIZATIONS, Parameterization
    from .predict import gradient_descent_mse, gradient_descent_mse_ensemble
    from .published import (
        NORMALIZATIONS,
        PUBLISHED_KERNELS,
        PublishedKernel,
        published_kernel,
        published_kernels,
    )
    from .regressor import KernelRegressor
    from .report import (
        layer_change,
        load_run,
        main_table,
        nn_ntk_ratios,
        paired_differences,
        ties_with_generator,
    )
    from .sklearn_kernels import NNGPKernel, NTKKernel
    from .tracking import track
    from .training import TrainResult, auto_lr, train, train_ensemble
