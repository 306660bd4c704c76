"""The run directory's lock: one writer at a time, an exclusive ``flock`` on
``RUN_DIR/.ntklab.lock`` that the kernel drops when its holder dies (so a killed run never
blocks the next), with the holder's pid and host in the file for the one-line message a
second run gets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from .messages import StoreError, unwritable_dir_message
from .schema import LOCK_NAME

__all__ = ["RunLock"]


class RunLock:
    """Exclusive lock on a run directory for the lifetime of a run.

    ``fcntl.flock`` on ``RUN_DIR/.ntklab.lock``: the kernel releases it when its holder
    exits, however it exits (``kill -9`` included), so a killed run never blocks the next.
    The holder writes its pid and host into the file for the message a second run gets
    (:class:`StoreError`, one line).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(unwritable_dir_message(self.run_dir, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(self._held_message()) from None
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except OSError:  # e.g. a full disk: the pid is only for another run's message
            pass
        self._fd = fd
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
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
