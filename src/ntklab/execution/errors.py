"""What a run raises: :class:`ExecutionError` (it cannot start or go on) and
:class:`Interrupted` (Ctrl-C or SIGTERM, after a clean stop)."""

from __future__ import annotations

__all__ = ["ExecutionError", "Interrupted"]


class ExecutionError(RuntimeError):
    """A run that cannot start or continue (bad options, unreachable scheduler, dead worker)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM, after stopping its workers and
    checkpointing its store. ``signal`` is ``"SIGINT"`` or ``"SIGTERM"``; ``stored`` the
    number of ``done`` trials in the store (``None`` if unknown)."""

    def __init__(self, signal_name: str = "SIGINT", stored: int | None = None):
        super().__init__(signal_name)
        self.signal = signal_name
        self.stored = stored
