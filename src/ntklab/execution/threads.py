"""Thread pools of the processes that run trials: torch's and numpy's BLAS, set in one place
under one lock (:data:`THREADS`, :func:`limit_threads`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ThreadLimits", "THREADS", "limit_threads"]


class ThreadLimits:
    """This process's thread pools for running trials: torch's and numpy's BLAS, set here only.

    Every path that runs trials sets them here, under one lock, so two changes never race in
    one process: a worker process (pool or Dask) sets them once for its life (:meth:`keep`);
    a run in the caller's own process holds them meanwhile (:meth:`hold`). The first holder
    sets both pools to its ``threads``, later holders share that setting, and the last one
    to leave restores what the process had before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._restore: Callable[[], None] | None = None
        self.threads: int | None = None

    def keep(self, threads: int) -> int:
        """Hold ``threads`` for the rest of this process's life (a worker process); returns
        the number in effect."""
        with self._lock:
            if self._holders == 0:
                _set_threads(threads)  # never restored
                self.threads = threads
            self._holders += 1
            return self.threads

    def sync_thread(self) -> None:
        """Make the calling thread's torch use the number this process holds, if any.

        torch's OpenMP thread count is per thread once a thread has used torch, so a Dask
        executor thread that ran torch before the worker's setting was made would keep its
        old count; this re-applies the same number (no other change)."""
        with self._lock:
            if self.threads is None:
                return
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    @contextmanager
    def hold(self, threads: int) -> Iterator[int]:
        """Run the block with ``threads`` threads for torch and BLAS (or the setting already
        held in this process); yields the number in effect."""
        with self._lock:
            if self._holders == 0:
                self._restore = _set_threads(threads)
                self.threads = threads
            self._holders += 1
            held = self.threads
        try:
            yield held
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._restore is not None:
                    self._restore()
                    self._restore, self.threads = None, None


def _set_threads(threads: int) -> Callable[[], None]:
    """Give torch and numpy's BLAS ``threads`` threads each; returns a function that puts
    back what they had. (A trial runs its linear algebra and its network training one after
    the other, so both may use all the cores the process is given.)"""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    blas = threadpool_limits(limits=threads, user_api="blas")
    torch.set_num_threads(threads)

    def restore() -> None:
        torch.set_num_threads(before)
        blas.restore_original_limits()

    return restore


#: This process's one :class:`ThreadLimits`.
THREADS = ThreadLimits()


def limit_threads(threads: int):
    """A context manager: torch and numpy's BLAS get ``threads`` threads each meanwhile (or
    share the setting that another trial of this process holds); see :class:`ThreadLimits`."""
    return THREADS.hold(threads)
