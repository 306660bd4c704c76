"""Checks of a user's PyTorch model and inputs, shared by :mod:`ntklab.torch_ntk`,
:mod:`ntklab.linearization` and :mod:`ntklab.tracking`: one line naming the problem and its fix
(a model without parameters, batch-norm or dropout in training mode, buffers that change in
``forward``, outputs that depend on other inputs of the batch, inputs of the wrong shape)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["as_batch", "check_model", "probe_model"]


def as_batch(X, name: str, like: torch.Tensor, trailing: tuple | None = None) -> torch.Tensor:
    """``X`` (n, *input_shape) as a finite tensor of ``like``'s dtype and device (integers,
    e.g. token ids for an embedding, stay int64)."""
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
            t = torch.as_tensor(arr if arr.dtype.kind in "iu" else arr.astype(np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a numeric array; could not convert it ({exc})"
            ) from None
    integer = not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)
    t = t.to(dtype=torch.int64 if integer else like.dtype, device=like.device)
    if t.dim() < 2 or t.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (n_samples, *input_shape) with n_samples >= 1; got "
            f"{tuple(t.shape)} (one example? use {name}[None])"
        )
    if trailing is not None and tuple(t.shape[1:]) != trailing:
        raise ValueError(
            f"{name} has input shape {tuple(t.shape[1:])} but X has {trailing}; "
            "both must be (n, *input_shape) with the same input_shape"
        )
    if not integer and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first")
    return t


_TRAIN_ONLY = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def check_model(model) -> torch.Tensor:
    """Refuse a non-module, a model without parameters, or one with batch-norm / dropout in
    training mode. Returns the first parameter (its dtype and device are the model's)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("model has no parameters, so its empirical NTK is zero/undefined")
    for name, mod in model.named_modules():
        if mod.training and isinstance(mod, _TRAIN_ONLY):
            kind = "updates its running statistics" if hasattr(mod, "running_mean") else "is random"
            raise ValueError(
                f"module {name!r} ({type(mod).__name__}) is in training mode and {kind} in "
                "forward; put the model in eval mode (model.eval()) before computing its NTK"
            )
    return param


def probe_model(model: nn.Module, x: torch.Tensor) -> int:
    """Evaluate ``model`` on two rows of ``x``; check that its buffers do not change (they are
    put back if they did), that each output depends only on its own input; return the number
    of outputs per example."""
    rows = x[:2]
    before = dict(model.named_buffers())
    saved = {k: v.clone() for k, v in before.items()}
    try:
        with torch.no_grad():
            out = model(rows)
            single = [model(rows[i : i + 1]) for i in range(rows.shape[0])]
    except Exception as exc:  # noqa: BLE001 - the user's model may raise anything
        raise ValueError(
            f"model could not be evaluated on inputs of shape {tuple(rows.shape)} "
            f"({type(exc).__name__}: {exc}); X must be (n, *input_shape) as the model expects"
        ) from None
    finally:
        after = dict(model.named_buffers())
        changed = [k for k, v in before.items() if after.get(k) is not v or not v.equal(saved[k])]
        for k in changed:
            prefix, _, name = k.rpartition(".")
            with torch.no_grad():
                before[k].copy_(saved[k])
            setattr(model.get_submodule(prefix), name, before[k])
    if changed:
        raise ValueError(
            f"buffer {changed[0]!r} changes in forward (a batch-norm in training mode?); put "
            "the model in eval mode (model.eval()) before computing its NTK"
        )
    if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != rows.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"model must return a tensor (n, *output_shape); got {shape}")
    if rows.shape[0] == 2:
        sep = torch.cat([s.reshape(1, -1) for s in single])
        tol = 1e3 * torch.finfo(out.dtype).eps * (1.0 + out.abs().max())
        if (sep - out.reshape(2, -1)).abs().max() > tol:
            raise ValueError(
                "the model's output for one input depends on the other inputs of the batch "
                "(batch-norm in training mode?); put the model in eval mode (model.eval())"
            )
    return out[0].numel()
