"""Running a study: trials on a local process pool or a Dask cluster, one writer, resume.

The main process is the only writer of ``RUN_DIR/results.sqlite``: trials run elsewhere
(worker processes, Dask workers) and send back a :class:`~ntklab.store.TrialRecord`, which
the main process commits in one transaction as soon as it arrives. Re-running the same
command skips the trials already ``done``; ``failed`` trials are rerun, and so are exactly
the (trial, method) pairs whose method raised. So a ``kill -9`` loses only the trials in
flight.

Faults. The run holds an exclusive lock on its directory (:class:`~ntklab.store.RunLock`;
a second run is refused with the holder's pid). Trials are planned lazily (``--trials``
may be huge, and may be lowered later: that changes only what is planned). SIGTERM is
handled like Ctrl-C: one line, the workers are stopped, the store is checkpointed and
closed. Workers ignore Ctrl-C (the main process stops them) and exit when the main process
dies, even by ``kill -9``.

Backends
--------
local (default)
    ``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes (default
    ``os.cpu_count()``, at most the number of pending trials), forked from a fork server
    that has imported torch and the trial code once (:mod:`~ntklab.execution.forkserver`;
    the command line starts it first, so that it imports while the config is read). Each worker gives
    torch and numpy's BLAS ``cores // workers`` threads each, so that workers × threads ≤
    cores (:func:`limit_threads`); with one worker the trials run in the main process with
    all the cores, and its thread settings are restored afterwards. A trial's threads are
    those of the whole plan's layout, whatever is left to run, so a resume or a retry gives
    the uninterrupted run's numbers bit for bit (float32 training depends on them). On a CUDA machine the
    pool has one worker per GPU instead, worker ``i`` training on ``cuda:i`` with
    ``cores // GPUs`` threads for the kernels (:func:`~ntklab.execution.devices.local_layout`).
Dask
    ``scheduler="tcp://HOST:PORT"`` submits the trials to an existing cluster (e.g. one made
    by dask-jobqueue on SLURM), once it has answered within ``scheduler_timeout`` (the whole
    connection, handshake included; no run directory is made before); ``dask_local=N`` starts a ``LocalCluster`` of N worker
    processes with ``cores // N`` threads each, one trial at a time. A trial's threads come
    from its worker (:func:`~ntklab.execution.dask.trial_threads`): its ``nthreads``
    divided by the trials it runs at once (start workers with ``--resources trials=1`` to
    give each trial all of a worker's threads), never from the whole machine. Worker nodes need ntklab installed.

Network methods run on CUDA when the process running the trial has it.

Modules: ``errors``, ``threads``, ``devices``, ``forkserver`` and ``progress`` <- ``trials``
(one task) <- ``pool`` and ``dask`` (the backends) <- ``runner`` (:func:`run_study`);
``runstore`` (opening the store) and ``status`` (:func:`run_status`). Names are imported on
first use (the command line starts the fork server before anything heavy is loaded).
"""

from __future__ import annotations

from .._lazy import attach_stub

#: The public names, each imported from the submodule that defines it on first use (the
#: command line starts the pool's fork server, :mod:`.forkserver`, before anything heavy is
#: imported), and the submodules: listed once, in ``__init__.pyi``.
__getattr__, __dir__, __all__ = attach_stub(__name__, __file__, globals())
