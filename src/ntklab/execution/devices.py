"""Where local trials run: how many worker processes, how many threads each, and which
device each worker's networks use (:func:`local_layout`).

On a machine with CUDA the pool starts **one worker process per GPU** (not one per CPU
core: sixteen processes sharing one GPU would each hold a CUDA context and fight over it),
pins worker ``i`` to ``cuda:i`` and gives each worker ``cores // workers`` CPU threads for
the kernel methods. Without CUDA it starts one worker per core, each with one thread, as
before. An explicit ``workers`` count is honoured either way; on CUDA its workers take the
GPUs in turn.

A trial's thread count never depends on how many trials are left: it is that of the whole
plan's layout (what an uninterrupted run gives each trial), since float32 training gives
other bits with other thread counts. A resume with fewer pending trials than cores starts
fewer workers, each with the threads the uninterrupted run would have used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["LocalLayout", "cuda_count", "local_layout"]


@dataclass(frozen=True)
class LocalLayout:
    """Local workers: ``workers`` processes of ``threads`` threads; worker ``i`` trains its
    networks on ``devices[i]`` (``None``: the default device of :func:`resolve_device`)."""

    workers: int
    threads: int
    devices: tuple[str | None, ...]

    def describe(self) -> str:
        """One line for the start of a run."""
        line = f"{self.workers} worker(s) x {self.threads} thread(s)"
        named = sorted({d for d in self.devices if d is not None})
        if any(d.startswith("cuda") for d in named):
            line += ", networks on " + ", ".join(named)
        return line


def cuda_count() -> int:
    """The number of CUDA devices this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_layout(
    *,
    device: str | None,
    workers: int | None,
    threads: int | None,
    n_tasks: int,
    planned: int | None = None,
    cpus: int | None = None,
    gpus: int | None = None,
) -> LocalLayout:
    """The local worker layout for ``n_tasks`` pending trials.

    Parameters
    ----------
    device : str or None
        ``None`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` (every GPU) or
        ``"cuda:N"`` (that GPU only); already validated by the caller.
    workers, threads : int or None
        The user's ``--workers`` and ``--threads``; ``None`` picks the defaults above.
    n_tasks : int
        Pending tasks; never more workers than that.
    planned : int, optional
        Tasks of the whole plan, done or not (default ``n_tasks``): the default ``threads``
        are those of the layout for ``planned`` tasks, so that a trial gets the same threads
        in a resume as in the uninterrupted run.
    cpus, gpus : int, optional
        This machine's CPU cores and CUDA devices (default: asked of the OS and of torch;
        tests pass them).
    """
    cpus = cpus or os.cpu_count() or 1
    if device is None or device == "cuda":
        gpus = cuda_count() if gpus is None else gpus
        cuda = [f"cuda:{i}" for i in range(gpus)]
    elif device.startswith("cuda"):
        cuda = [device]
    else:
        cuda = []
    slots = workers or len(cuda) or cpus
    n = max(1, min(slots, n_tasks))
    whole = max(1, min(slots, max(planned or 0, n_tasks)))  # workers of the uninterrupted run
    if cuda:
        devices: tuple[str | None, ...] = tuple(cuda[i % len(cuda)] for i in range(n))
    else:
        devices = (device,) * n
    return LocalLayout(workers=n, threads=threads or max(1, cpus // whole), devices=devices)
