"""The public names of :mod:`ntklab.execution`, the one table of them (see ``ntklab/__init__.pyi``)."""

from . import (
    dask,
    devices,
    errors,
    forkserver,
    memory,
    pool,
    progress,
    runner,
    runstore,
    status,
    threads,
    trials,
)
from .dask import TRIAL_RESOURCE as TRIAL_RESOURCE
from .dask import connect_dask as connect_dask
from .errors import ExecutionError as ExecutionError
from .errors import Interrupted as Interrupted
from .forkserver import start_pool_server as start_pool_server
from .progress import Progress as Progress
from .runner import RunSummary as RunSummary
from .runner import run_study as run_study
from .runstore import open_store as open_store
from .runstore import versions as versions
from .status import run_status as run_status
from .threads import limit_threads as limit_threads
