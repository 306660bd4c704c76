"""The run directory's lock: one writer at a time, an exclusive lock on
``RUN_DIR/.ntklab.lock`` (:class:`filelock.FileLock`: ``flock`` on Unix) that the kernel drops
when its holder dies (so a killed run never blocks the next), with the holder's pid and host
in the file for the one-line message a second run gets.

The pid survives a second run's attempt because filelock opens the file of a lock it does
not get without truncating it: so does the filelock required (4.3 or later); older releases
(3.x) opened it with ``O_TRUNC``, which erased the holder's pid before the second run read it.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .messages import StoreError, unwritable_dir_message
from .schema import LOCK_NAME

__all__ = ["RunLock"]

#: Errors of taking the lock that mean the directory (or the lock file) cannot be written.
_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR)


class RunLock:
    """Exclusive lock on a run directory for the lifetime of a run.

    An exclusive, non-blocking :class:`filelock.FileLock` on ``RUN_DIR/.ntklab.lock`` (an
    ``flock``, never its soft fallback): the kernel releases it when its holder exits,
    however it exits (``kill -9`` included), so a killed run never blocks the next. The
    holder writes its pid and host into the file for the message a second run gets
    (:class:`StoreError`, one line).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._lock: FileLock | None = None

    def acquire(self) -> RunLock:
        if not self.run_dir.is_dir():  # filelock would make the directory: a run makes it
            missing = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            raise StoreError(unwritable_dir_message(self.run_dir, missing))
        lock = FileLock(self.path, timeout=0, mode=0o644, fallback_to_soft=False)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(self._held_message()) from None
        except OSError as exc:
            if exc.errno in _UNWRITABLE:
                raise StoreError(unwritable_dir_message(self.run_dir, exc)) from None
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            self.path.write_text(f"{os.getpid()} {socket.gethostname()}\n")
        except OSError:  # e.g. a full disk: the pid is only for another run's message
            pass
        self._lock = lock
        return self

    def _held_message(self) -> str:
        holder = ""
        for _ in range(20):  # the holder may be between truncating and writing its pid
            try:
                holder = self.path.read_text().strip()
            except OSError:
                holder = ""
            if holder:
                break
            time.sleep(0.05)
        pid, _, host = holder.partition(" ")
        who = f"pid {pid}" if pid else "another process"
        if pid and host and host != socket.gethostname():
            who += f" on {host}"
        return (
            f"{self.run_dir} is in use by another ntklab run ({who}); two runs must not write "
            "one directory: wait for it to finish (or stop it), then rerun to resume"
        )

    def release(self) -> None:
        if self._lock is not None:
            try:
                self._lock.release()
            finally:
                self._lock = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
