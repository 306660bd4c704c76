r"""Networks tuned on a validation split: a width × learning-rate grid and early stopping.

The training rows are split once (a seeded permutation) into a fitting part and a validation
part (``validation_fraction``, default 0.2). For each width of ``grid_widths`` and each
multiple :math:`c` of ``grid_lr_scales``, networks of the method's architecture train by
full-batch gradient descent at :math:`\eta = c \cdot \eta_\text{auto}`,
:math:`\eta_\text{auto} = 0.5\, m / \lambda_\max(\Theta)` (:func:`ntklab.auto_lr`, on the
fitting rows), for up to ``epochs`` epochs, one network per output column (several outputs:
one-hot classes, trained stacked). Their predictions are recorded every
:math:`\lceil \text{epochs}/40 \rceil` epochs on the validation and the test rows; the grid
point and the recorded epoch of the smallest validation mean squared error are chosen
(validation only), and the test prediction is that network's at that epoch — early stopping,
with no retraining. The choice is recorded as ``hp_width``, ``hp_lr``, ``hp_lr_scale`` and
``hp_epochs``.
"""

from __future__ import annotations

import numpy as np

from .config import MethodConfig

__all__ = ["network_cv", "DEFAULT_WIDTHS", "DEFAULT_LR_SCALES", "RECORDS"]

DEFAULT_WIDTHS = (512,)
DEFAULT_LR_SCALES = (0.5, 1.0)
#: Recorded epochs per run (the resolution of early stopping).
RECORDS = 40


def network_cv(
    method: MethodConfig, X: np.ndarray, Y: np.ndarray, X_test: np.ndarray, *, seed: int,
    device=None,
) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Early-stopped networks chosen on validation; ``(test predictions (n_test, k), hp)``.

    ``Y`` (m, k): centered training targets, one column per output."""
    from .training import auto_lr, train_ensemble

    arch = method.architecture()
    rng = np.random.default_rng(seed)
    m, k = Y.shape
    n_val = max(1, int(round((method.validation_fraction or 0.2) * m)))
    if m - n_val < 2:
        raise ValueError(
            f"{method.name}: {m} training rows leave fewer than 2 to fit beside "
            f"{n_val} validation rows; lower validation_fraction or use more rows"
        )
    perm = rng.permutation(m)
    val, fit = perm[:n_val], perm[n_val:]
    X_fit, Y_fit = X[fit], Y[fit]
    X_eval = np.vstack([X[val], X_test])
    lr_auto = auto_lr(arch.kernels(X_fit, check_input=False)[1], check_input=False)
    epochs = int(method.epochs)
    record_every = max(1, -(-epochs // RECORDS))
    best = None
    for width in method.grid_widths or DEFAULT_WIDTHS:
        for scale in method.grid_lr_scales or DEFAULT_LR_SCALES:
            seeds = [int(s) for s in rng.integers(0, 2**31 - 1, size=k)]
            if k == 1:  # one output: one network on the shared rows
                data = dict(X=X_fit, y=Y_fit[:, 0], X_test=X_eval, y_test=np.zeros(len(X_eval)))
            else:  # one network per output column, trained stacked
                data = dict(
                    X=np.broadcast_to(X_fit, (k,) + X_fit.shape).copy(),
                    y=np.ascontiguousarray(Y_fit.T),
                    X_test=np.broadcast_to(X_eval, (k,) + X_eval.shape).copy(),
                    y_test=np.zeros((k, X_eval.shape[0])),
                )
            results = train_ensemble(
                arch,
                int(width),
                data["X"],
                data["y"],
                seeds=seeds,
                lr=[scale * lr_auto] * k,
                epochs=epochs,
                record_every=record_every,
                X_test=data["X_test"],
                y_test=data["y_test"],
                device=device,
                stacked=k > 1,
                check_input=False,
            )
            # (recorded epochs, eval rows, outputs)
            preds = np.stack([r.test_predictions for r in results], axis=-1)
            val_mse = np.mean((preds[:, :n_val, :] - Y[val][None]) ** 2, axis=(1, 2))
            val_mse = np.where(np.isfinite(val_mse), val_mse, np.inf)
            i = int(np.argmin(val_mse))
            if best is None or val_mse[i] < best[0]:
                best = (
                    float(val_mse[i]),
                    preds[i, n_val:, :],
                    {
                        "width": float(width),
                        "lr": scale * lr_auto,
                        "lr_scale": float(scale),
                        "epochs": float(results[0].epochs[i]),
                        "validation_mse": float(val_mse[i]),
                    },
                )
    if not np.isfinite(best[0]):
        raise FloatingPointError(f"{method.name}: every network of the grid diverged")
    return best[1], best[2]
