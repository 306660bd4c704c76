"""ntklab: test neural tangent kernel theory against real trained networks.

The public API is re-exported here; the modules follow the data flow
config -> data -> architecture (kernels + networks) -> training / predict -> study -> store -> report.
"""

from .architecture import PARAMETERIZATIONS, Architecture, Parameterization
from .kernels import laplacian, rbf
from .networks import FullyConnectedNetwork, default_device
from .predict import KernelRegressor

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "Parameterization",
    "PARAMETERIZATIONS",
    "FullyConnectedNetwork",
    "KernelRegressor",
    "default_device",
    "laplacian",
    "rbf",
    "__version__",
]
