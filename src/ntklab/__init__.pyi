"""The public names of :mod:`ntklab`: the one table of them, read by type checkers and IDEs
and, at import, by :func:`ntklab._lazy.attach_stub` (each name imported on first use).

``from .sub import name as name``: a public name (in ``__all__``); ``from . import sub as
sub``: a public submodule; ``from . import sub``: a submodule reachable as an attribute
(``ntklab.verify``), not in ``__all__``; ``name: type``: defined by ``__init__.py`` itself.
"""

from . import (
    architecture,
    cli,
    config,
    empirical,
    equivalence,
    execution,
    kernels,
    layers,
    linalg,
    linearization,
    model_checks,
    monte_carlo,
    networks,
    ntk_contract,
    ntk_vector,
    parameterizations,
    predict,
    published,
    regimes,
    regressor,
    report,
    sklearn_kernels,
    store,
    study,
    torch_ntk,
    tracking,
    training,
    verify,
)
from . import data as data
from .architecture import Architecture as Architecture
from .empirical import empirical_ntk as empirical_ntk
from .equivalence import EquivalenceResult as EquivalenceResult
from .equivalence import equivalence_metrics as equivalence_metrics
from .kernels import laplacian as laplacian
from .kernels import rbf as rbf
from .linearization import linearize as linearize
from .monte_carlo import monte_carlo_nngp as monte_carlo_nngp
from .monte_carlo import monte_carlo_ntk as monte_carlo_ntk
from .networks import FullyConnectedNetwork as FullyConnectedNetwork
from .networks import default_device as default_device
from .parameterizations import PARAMETERIZATIONS as PARAMETERIZATIONS
from .parameterizations import Parameterization as Parameterization
from .predict import gradient_descent_mse as gradient_descent_mse
from .predict import gradient_descent_mse_ensemble as gradient_descent_mse_ensemble
from .published import NORMALIZATIONS as NORMALIZATIONS
from .published import PUBLISHED_KERNELS as PUBLISHED_KERNELS
from .published import PublishedKernel as PublishedKernel
from .published import published_kernel as published_kernel
from .published import published_kernels as published_kernels
from .regressor import KernelRegressor as KernelRegressor
from .report import layer_change as layer_change
from .report import load_run as load_run
from .report import main_table as main_table
from .report import nn_ntk_ratios as nn_ntk_ratios
from .report import paired_differences as paired_differences
from .report import ties_with_generator as ties_with_generator
from .sklearn_kernels import NNGPKernel as NNGPKernel
from .sklearn_kernels import NTKKernel as NTKKernel
from .tracking import track as track
from .training import TrainResult as TrainResult
from .training import auto_lr as auto_lr
from .training import train as train
from .training import train_ensemble as train_ensemble

__version__: str
