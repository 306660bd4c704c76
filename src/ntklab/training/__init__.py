"""Training finite networks by gradient descent on the squared loss (SPEC §3).

Modules, by idea:

* :mod:`.engine`: the one functional definition of a network's computation on
  :mod:`torch.func` (parameter dicts, forward, stacked forward, loss gradient, Jacobian);
* :mod:`.sgd`: SGD through the engine, for one network or ``k`` stacked with ``vmap``;
* :mod:`.fused`: the hand-written SGD fast paths for networks of dense layers and ReLUs
  (one network, or stacked on the forward/backward pass of :mod:`ntklab.dense_pass`),
  selected only where they are measured at 1.5x the engine or more;
* :mod:`.epochs`: epochs, mini-batch orders, recording, divergence checks (:func:`.epochs.run`);
* :mod:`.arguments`: :func:`auto_lr`, :func:`default_record_every` and the argument checks
  shared by the training functions;
* :mod:`.loop`: :func:`train`, one network;
* :mod:`.ensemble`: :func:`train_ensemble`, networks of several seeds at once;
* :mod:`.results`: :class:`TrainResult`, :class:`CenteredNetwork`.
"""

from __future__ import annotations

from .arguments import auto_lr, default_record_every
from .ensemble import train_ensemble
from .loop import train
from .results import CenteredNetwork, TrainResult

__all__ = [
    "TrainResult",
    "CenteredNetwork",
    "auto_lr",
    "default_record_every",
    "train",
    "train_ensemble",
]
