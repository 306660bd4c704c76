"""Whether a plan's networks can fit in memory at all (:func:`check_networks_fit`), checked
before a run makes its directory: a network far too wide for the machine gets one line that
says so and how much memory it needs, not an allocation error from torch in every trial."""

from __future__ import annotations

import os

from .errors import ExecutionError

__all__ = ["check_networks_fit", "network_parameters", "machine_memory"]

#: Bytes of one value of a trained network (float32, as the seed's networks).
VALUE_BYTES = 4


def network_parameters(d: int, width: int, depth: int) -> int:
    """Parameters of the fully connected network ``d -> width -> ... -> 1`` with ``depth``
    hidden layers: weights and biases of ``Dense(d, w)``, ``depth - 1`` times
    ``Dense(w, w)``, and ``Dense(w, 1)``."""
    return (d + 1) * width + (depth - 1) * (width + 1) * width + (width + 1)


def machine_memory(device: str | None) -> tuple[int, str]:
    """``(bytes, where)``: the memory the networks of a local run train in, the smallest
    GPU's when they run on CUDA, else the machine's RAM (0 if unknown)."""
    if device is None or str(device).startswith("cuda"):
        from .devices import cuda_count

        n = cuda_count()
        if n:
            import torch

            ids = range(n) if device in (None, "cuda") else [int(str(device).split(":")[1])]
            sizes = [torch.cuda.get_device_properties(i).total_memory for i in ids]
            return min(sizes), "the GPU"
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"
    except (OSError, ValueError):  # pragma: no cover - not a POSIX system
        return 0, "this machine"


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def check_networks_fit(plan, device: str | None, *, memory: int | None = None) -> None:
    """Raise :class:`ExecutionError` (one line) when a network method of ``plan`` cannot fit:
    its float32 weights and gradients alone (a lower bound of what training needs) exceed
    the memory its device has (``memory`` bytes; default :func:`machine_memory`)."""
    where = "this machine"
    if memory is None:
        memory, where = machine_memory(device)
    if memory <= 0:
        return
    for point in plan.points:
        data = point.config.data
        d = getattr(data, "d", None) or 1
        for m in point.config.methods:
            if m.kind == "network":
                copies, what = 2, "float32 weights and gradients"
            elif m.kind == "ntk_time" and m.width is not None and m.f0 == "network":
                copies, what = 1, "float32 weights (its f0 network)"
            else:
                continue
            depth = m.depth or 1
            need = copies * VALUE_BYTES * network_parameters(d, m.width, depth)
            if need <= memory:
                continue
            fits = _widest(d, depth, copies, memory)
            at = f" at sweep point {point.index} ({point.params})" if point.params else ""
            raise ExecutionError(
                f"method {m.name}{at}: width {m.width} cannot fit: its {what} alone need "
                f"{_size(need)}, and {where} has {_size(memory)} of memory; choose a much "
                f"smaller width (--set methods.{m.name}.width=...; even those alone fit only "
                f"below about {fits})"
            )


def _widest(d: int, depth: int, copies: int, memory: int) -> int:
    """The largest width whose lower bound fits in ``memory`` (bisection)."""
    lo, hi = 1, 1
    while copies * VALUE_BYTES * network_parameters(d, hi, depth) <= memory:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if copies * VALUE_BYTES * network_parameters(d, mid, depth) <= memory:
            lo = mid
        else:
            hi = mid
    return lo
