"""ntklab: test neural tangent kernel theory against real trained networks.

The public API is re-exported here; the modules follow the data flow
config -> data -> architecture (kernels + networks) -> training / predict -> study -> store -> report.
"""

from . import data
from .architecture import PARAMETERIZATIONS, Architecture, Parameterization
from .empirical import empirical_ntk, monte_carlo_nngp, monte_carlo_ntk
from .equivalence import EquivalenceResult, equivalence_metrics
from .kernels import laplacian, rbf
from .networks import FullyConnectedNetwork, default_device
from .predict import KernelRegressor, gradient_descent_mse, gradient_descent_mse_ensemble
from .published import (
    NORMALIZATIONS,
    PUBLISHED_KERNELS,
    PublishedKernel,
    published_kernel,
    published_kernels,
)
from .report import (
    layer_change,
    load_run,
    main_table,
    nn_ntk_ratios,
    paired_differences,
    ties_with_generator,
)
from .sklearn_kernels import NNGPKernel, NTKKernel
from .training import TrainResult, auto_lr, train, train_ensemble

__version__ = "0.1.0"

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
