"""The fork server that the local pool's workers are forked from (:func:`pool_context`).

A spawned worker imports torch and the trial code itself (about 1.5 s and a few hundred MB
each, for every worker of every run). Forked from a server that has imported them once, a
worker starts in milliseconds and shares those pages with the others. The server never runs
any of that code (no thread pool, no CUDA), so forking from it is safe, and the workers it
forks start their own. :func:`start_pool_server` starts it early, so that it imports while
the main process reads its config. Where there is no fork server (Windows), workers are
spawned.

This module imports nothing heavy: the command line calls it first.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context

__all__ = ["PRELOAD", "pool_context", "start_pool_server"]

#: What the fork server imports before it forks a worker (a module that fails to import is
#: skipped by multiprocessing, and then imported by each worker).
PRELOAD = ("ntklab.execution.pool", "numba")


def pool_context() -> multiprocessing.context.BaseContext:
    """The multiprocessing context of the local pool: the fork server (preloading
    :data:`PRELOAD`) where the platform has one, else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start_pool_server() -> None:
    """Start the fork server now, in the background (it imports :data:`PRELOAD` while this
    process goes on); a pool made later connects to it. Nothing where workers are spawned.

    It starts with SIGINT blocked, and the workers it forks inherit that: a Ctrl-C is the
    main process's to handle, which stops the workers itself (:mod:`~ntklab.execution.pool`
    starts the server the same way when no one started it before). It exits with this
    process.
    """
    ctx = pool_context()
    if ctx.get_start_method() != "forkserver":  # pragma: no cover
        return
    import signal
    import threading
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        forkserver.ensure_running()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
