r"""Is my network its NTK? Follow a network, its linearization and the NTK prediction in step.

:func:`track` is called inside the user's own training loop. After each optimizer step of
the network, :meth:`Tracker.step` takes the same step, on the same batch and with an optimizer
of the same type and hyperparameters (learning-rate schedules included), on the network's
linearization :math:`f^{\text{lin}}(x; w) = f(x; w_0) + J(x)(w - w_0)`
(:func:`ntklab.linearize`). At the chosen steps it records, on the test inputs, the outputs
of the network, of the linear model, and (squared loss, plain SGD) the closed form of
:func:`ntklab.gradient_descent_mse` with the empirical NTK at initialization, and the
*kernel drift* :math:`\|\hat\Theta_t - \hat\Theta_0\|_F / \|\hat\Theta_0\|_F` on a fixed
subsample of the training inputs. Lee et al. (2019) prove that the first two agree as the
width grows; where they part, the network has left its kernel regime.

The closed form is exact for full-batch gradient descent. Under mini-batch SGD (batches
drawn independently of the outputs) the linear model's outputs are affine in the previous
ones, so the closed form is their *mean* over the batch draws, not one run.

References
----------
Lee, J. et al. (2019). Wide neural networks of any depth evolve as linear models under
gradient descent. NeurIPS 32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .linearization import linearize
from .model_checks import as_batch, check_model

__all__ = ["Tracker", "track"]


def _modes(model: nn.Module) -> dict:
    return {mod: mod.training for mod in model.modules()}


def _is_mse(loss_fn) -> bool:
    return isinstance(loss_fn, nn.MSELoss) and loss_fn.reduction == "mean"


def _plain_sgd(opt) -> bool:
    if type(opt) is not torch.optim.SGD:
        return False
    keys = ("momentum", "weight_decay")
    return all(all(g.get(k, 0) == 0 for k in keys) for g in opt.param_groups)


def _as_targets(y, name: str, like: torch.Tensor, n: int) -> torch.Tensor:
    t = y.detach() if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.dtype.is_floating_point:
        t = t.to(like.dtype)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values; remove them first")
    t = t.to(like.device)
    if t.dim() == 0 or t.shape[0] != n:
        raise ValueError(f"{name} must have one row per input ({n}); got shape {tuple(t.shape)}")
    return t


class Tracker:
    """The state of :func:`track`: call :meth:`step` after each optimizer step.

    Attributes
    ----------
    linearized : ntklab.linearization.LinearizedModel
        The linear model trained in lockstep.
    outputs : dict
        ``{"step": [...], "network": [...], "linearized": [...], "ntk": [...]}``: the test
        outputs (arrays (n_test, *output_shape)) at each recorded step.
    """

    def __init__(self, model, X_train, y_train, X_test, y_test, optimizer, loss_fn, record,
                 kernel_points, closed_form, max_closed_form, seed):  # fmt: skip
        param = check_model(model)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(
                f"optimizer must be the torch.optim.Optimizer that trains model; got "
                f"{type(optimizer).__name__}"
            )
        self.model, self.optimizer = model, optimizer
        self.loss_fn = nn.MSELoss() if loss_fn is None else loss_fn
        self.X_train = as_batch(X_train, "X_train", param)
        trailing = tuple(self.X_train.shape[1:])
        self.X_test = as_batch(X_test, "X_test", param, trailing)
        self.y_train = _as_targets(y_train, "y_train", param, self.X_train.shape[0])
        self.y_test = (
            None if y_test is None else _as_targets(y_test, "y_test", param, self.X_test.shape[0])
        )
        if record is not None:
            bad = isinstance(record, bool) or (isinstance(record, int) and record < 1)
            try:
                record = record if isinstance(record, int) else {int(s) for s in record}
            except (TypeError, ValueError):
                bad = True
            if bad:
                raise ValueError(
                    f"record must be None, an int >= 1 or a collection of steps; got {record!r}"
                )
        if (
            isinstance(kernel_points, bool)
            or not isinstance(kernel_points, int)
            or kernel_points < 2
        ):
            raise ValueError(f"kernel_points must be an int >= 2; got {kernel_points!r}")
        if closed_form not in ("auto", "always", True, False, None):
            raise ValueError(f"closed_form must be 'auto', 'always' or False; got {closed_form!r}")
        self.record = record
        self.linearized = linearize(model)
        index = {id(p): i for i, p in enumerate(model.parameters())}
        mine = list(self.linearized.parameters())
        groups = []
        for g in optimizer.param_groups:
            if any(id(p) not in index for p in g["params"]):
                raise ValueError("optimizer trains parameters that are not the model's")
            hyper = {k: v for k, v in g.items() if k != "params"}
            groups.append({"params": [mine[index[id(p)]] for p in g["params"]], **hyper})
        try:
            self.lin_optimizer = type(optimizer)(groups)
        except Exception as exc:  # noqa: BLE001 - a user's optimizer class
            raise ValueError(
                f"could not build a {type(optimizer).__name__} for the linearized model from "
                f"the optimizer's parameter groups ({exc})"
            ) from None
        self.lrs = [g.get("lr") for g in optimizer.param_groups]
        # the hyperparameters of each network step, as they were when it was taken (a
        # scheduler may change them before step() is called)
        self._hyper = self._snapshot(optimizer)
        self._hook = optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: setattr(self, "_hyper", self._snapshot(opt))
        )
        rng = np.random.default_rng(seed)
        m = self.X_train.shape[0]
        pick = np.sort(rng.choice(m, size=min(kernel_points, m), replace=False))
        self.X_kernel = self.X_train[torch.as_tensor(pick, device=param.device)]
        self.t = 0
        self.rows: list[dict] = []
        self.outputs: dict[str, list] = {"step": [], "network": [], "linearized": [], "ntk": []}
        self.kernel0 = self._kernel()
        self.f0_test = self._outputs(model, self.X_test)
        self._closed = None
        self.closed_form_note = ""
        if closed_form:
            self._setup_closed_form(max_closed_form, closed_form == "always")
        self._record()

    # ---- the user's loop ----------------------------------------------------------------
    def step(self, xb, yb) -> None:
        """Train the linear model on the batch the network was just trained on, one step;
        record if this step count is one of the chosen ones."""
        lin, opt = self.linearized, self.lin_optimizer
        for hyper, g_lin in zip(self._hyper, opt.param_groups, strict=True):
            g_lin.update(hyper)
        if [h.get("lr") for h in self._hyper] != self.lrs and self._closed:
            self._closed = None
            self.closed_form_note = f"the learning rate changed at step {self.t + 1}"
        param = next(self.model.parameters())
        xb = xb.detach().to(param.device) if isinstance(xb, torch.Tensor) else xb
        xb = as_batch(xb, "xb", param, tuple(self.X_train.shape[1:]))
        yb = _as_targets(yb, "yb", param, xb.shape[0])
        opt.zero_grad(set_to_none=True)
        self.loss_fn(lin(xb), yb).backward()
        opt.step()
        self.t += 1
        if self._due(self.t):
            self._record()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if exc[0] is None and (not self.outputs["step"] or self.outputs["step"][-1] != self.t):
            self._record()

    def close(self) -> None:
        """Stop following the optimizer's steps (the context manager calls it on exit)."""
        self._hook.remove()

    @staticmethod
    def _snapshot(opt) -> list[dict]:
        return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def _due(self, t: int) -> bool:
        if self.record is None:
            return t & (t - 1) == 0  # 1, 2, 4, 8, ...
        if isinstance(self.record, int):
            return t % self.record == 0
        return t in self.record

    # ---- measurements -------------------------------------------------------------------
    def _outputs(self, module, X) -> torch.Tensor:
        modes = _modes(self.model)
        self.model.eval()
        try:
            with torch.no_grad():
                return module(X).detach()
        finally:
            for mod, mode in modes.items():
                mod.train(mode)

    def _kernel(self) -> np.ndarray:
        from .torch_ntk import generic_ntk

        modes = _modes(self.model)
        self.model.eval()
        try:
            return generic_ntk(self.model, self.X_kernel)
        finally:
            for mod, mode in modes.items():
                mod.train(mode)

    def _setup_closed_form(self, max_points: int, force: bool) -> None:
        from .predict import gradient_descent_mse
        from .torch_ntk import generic_ntk

        if not (_is_mse(self.loss_fn) and _plain_sgd(self.optimizer)):
            self.closed_form_note = "needs nn.MSELoss() and torch.optim.SGD without momentum"
            return
        if len({lr for lr in self.lrs}) != 1 or sum(
            len(g["params"]) for g in self.optimizer.param_groups
        ) != len(list(self.model.parameters())):
            self.closed_form_note = "needs one learning rate for all parameters"
            return
        f_train = self._outputs(self.model, self.X_train)
        m, n = self.X_train.shape[0], self.X_test.shape[0]
        K = f_train[0].numel()
        if m * K > max_points and not force:
            self.closed_form_note = f"skipped: {m * K} training outputs > {max_points}"
            return
        modes = _modes(self.model)
        self.model.eval()
        try:
            full = generic_ntk(self.model, self.X_train, output="full")
            cross = generic_ntk(self.model, self.X_test, self.X_train, output="full")
        finally:
            for mod, mode in modes.items():
                mod.train(mode)
        K_train = full.transpose(0, 2, 1, 3).reshape(m * K, m * K)
        K_cross = cross.transpose(0, 2, 1, 3).reshape(n * K, m * K)
        y = self.y_train.reshape(m, -1)
        if y.shape[1] != K:
            self.closed_form_note = f"y_train has {y.shape[1]} columns, the model {K} outputs"
            return
        args = (K_train, K_cross, y.double().cpu().numpy().ravel())
        f0 = dict(f0_train=f_train.double().cpu().numpy().ravel(),
                  f0_test=self.f0_test.double().cpu().numpy().ravel())  # fmt: skip
        eig = np.linalg.eigh(K_train)
        lr = self.lrs[0]

        def predict(t: int) -> np.ndarray:
            out = gradient_descent_mse(*args, lr=lr, steps=t, eig=eig, check_input=False, **f0)[1]
            return out.reshape(self.f0_test.shape)

        self._closed = predict

    def _record(self) -> None:
        f_net = self._outputs(self.model, self.X_test)
        f_lin = self._outputs(self.linearized, self.X_test)
        kernel = self.kernel0 if self.t == 0 else self._kernel()
        f_ntk = None if self._closed is None else self._closed(self.t)
        net, lin = f_net.double().cpu().numpy(), f_lin.double().cpu().numpy()
        moved = np.linalg.norm(lin - self.f0_test.double().cpu().numpy())
        gap = np.linalg.norm(net - lin)
        row = {
            "step": self.t,
            "network_vs_linearized": gap / np.sqrt(net.size),
            "relative_gap": gap / moved if moved > 0 else np.nan,
            "kernel_drift": np.linalg.norm(kernel - self.kernel0) / np.linalg.norm(self.kernel0),
            "ntk_vs_linearized": np.nan
            if f_ntk is None
            else np.linalg.norm(f_ntk - lin) / np.sqrt(lin.size),
        }
        w0 = self.linearized.initial_parameters()
        pairs = zip(self.model.parameters(), w0.values(), strict=True)
        sq = sum(float((p.detach() - q).pow(2).sum()) for p, q in pairs)
        row["weight_change"] = np.sqrt(sq / sum(float(v.pow(2).sum()) for v in w0.values()))
        if self.y_test is not None:
            for name, f in (("network", f_net), ("linearized", f_lin)):
                with torch.no_grad():
                    row[f"test_loss_{name}"] = float(self.loss_fn(f, self.y_test))
                if not self.y_test.dtype.is_floating_point and f.dim() == 2:
                    row[f"test_accuracy_{name}"] = float(
                        (f.argmax(1) == self.y_test).double().mean()
                    )
            if f_ntk is not None:
                t = torch.as_tensor(f_ntk, dtype=f_net.dtype, device=f_net.device)
                row["test_loss_ntk"] = float(self.loss_fn(t, self.y_test))
        self.rows.append(row)
        for key, val in (("step", self.t), ("network", net), ("linearized", lin), ("ntk", f_ntk)):
            self.outputs[key].append(val)

    # ---- results ------------------------------------------------------------------------
    def dataframe(self):
        """One row per recorded step (pandas DataFrame).

        Columns: ``step``; ``network_vs_linearized`` (RMS difference of the test outputs);
        ``relative_gap`` (:math:`\\|f - f^{lin}\\| / \\|f^{lin} - f_0\\|` on the test inputs:
        small while the network follows its linearization); ``kernel_drift``;
        ``ntk_vs_linearized`` (RMS difference between the closed form and the linear model,
        NaN without a closed form); ``weight_change`` (:math:`\\|w - w_0\\| / \\|w_0\\|`);
        with ``y_test``: ``test_loss_*`` (and ``test_accuracy_*`` for class labels) of the
        network, the linear model and the closed form.
        """
        import pandas as pd

        return pd.DataFrame(self.rows)

    def figure(self):
        """A matplotlib figure: test loss (or gap) and kernel drift against the step."""
        import matplotlib.pyplot as plt

        df = self.dataframe()
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        x = df["step"].clip(lower=0.5)
        losses = [c for c in df if c.startswith("test_loss_")]
        for c in losses or ["network_vs_linearized"]:
            axes[0].plot(x, df[c], marker=".", label=c.replace("test_loss_", ""))
        axes[0].set(xscale="log", xlabel="step", ylabel="test loss" if losses else "RMS gap")
        axes[0].legend()
        axes[1].plot(x, df["relative_gap"], marker=".", label="|f - f_lin| / |f_lin - f_0|")
        axes[1].plot(x, df["kernel_drift"], marker=".", label="kernel drift")
        axes[1].set(xscale="log", xlabel="step")
        axes[1].legend()
        fig.tight_layout()
        return fig


def track(model: nn.Module, X_train, y_train, X_test, y_test=None, *, optimizer,
          loss_fn=None, record=None, kernel_points: int = 64, closed_form="auto",
          max_closed_form: int = 4000, seed: int = 0) -> Tracker:  # fmt: skip
    r"""Follow ``model``, its linearization and the NTK prediction inside a training loop.

    Call it before the first step, then ``tracker.step(xb, yb)`` after each
    ``optimizer.step()`` with the batch the network was trained on; it can also be used as
    a context manager, which records the last step on exit::

        with ntklab.track(net, X, y, X_test, y_test, optimizer=opt, loss_fn=loss_fn) as tr:
            for xb, yb in batches:
                opt.zero_grad(); loss_fn(net(xb), yb).backward(); opt.step()
                tr.step(xb, yb)
        tr.dataframe(); tr.figure()

    Parameters
    ----------
    model : torch.nn.Module
        The network, at its initialization (the linearization point :math:`w_0`).
    X_train, y_train : array_like or torch.Tensor
        Training inputs (m, *input_shape) and targets (for the closed form and the kernel
        drift's subsample).
    X_test : array_like or torch.Tensor (n, *input_shape)
    y_test : optional
        Test targets, for the test losses (and accuracies, given class labels).
    optimizer : torch.optim.Optimizer
        The network's optimizer; the linear model gets one of the same type and
        hyperparameters, kept in step with it: each of its steps uses the
        hyperparameters of the network's step just taken (read by an optimizer step
        pre-hook, so learning-rate schedules are followed whenever they step; ``close()`` or
        leaving the ``with`` block removes the hook).
    loss_fn : callable, default ``nn.MSELoss()``
        ``loss_fn(outputs, targets)``, the loss the network is trained with.
    record : None, int or collection of int
        Steps to record (besides step 0): ``None`` powers of two, an int every so many steps.
    kernel_points : int
        Training inputs (a subsample drawn with ``seed``) on which the kernel drift is measured.
    closed_form : {"auto", "always", False}
        The prediction of :func:`ntklab.gradient_descent_mse` with the empirical NTK at
        :math:`w_0` (its full output block for vector outputs), made only for
        ``nn.MSELoss()`` and ``torch.optim.SGD`` without momentum or weight decay, with one
        constant learning rate; ``"auto"`` skips it beyond ``max_closed_form`` training
        outputs (the eigendecomposition is cubic in their number).
    seed : int

    Returns
    -------
    Tracker
        ``.dataframe()``, ``.figure()``, ``.outputs``, ``.linearized``, and
        ``.closed_form_note`` (why there is no closed form, if there is none).
    """
    return Tracker(model, X_train, y_train, X_test, y_test, optimizer, loss_fn, record,
                   kernel_points, closed_form, max_closed_form, seed)  # fmt: skip
