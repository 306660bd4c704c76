r"""One trial of a study: its data, every method, one :class:`~ntklab.store.TrialRecord`.

Randomness (SPEC §4; paired comparisons). Trial ``t`` of a study with seed ``s`` uses

* data: ``numpy.random.SeedSequence(s, spawn_key=(t,))`` -> ``numpy.random.default_rng``, so
  every sweep point (and every method) sees the same X, y and split for trial ``t``;
* the network of method ``M``: the integer
  ``SeedSequence(s, spawn_key=(t, 1, crc32(M))).generate_state(1)[0]``, which depends only on
  the study seed, the trial and the method's name (not on the order of the methods).

So any single trial can be re-run alone (:func:`run_trial`) and gives the same numbers.

Kernels are computed once per trial on all n rows and shared by the methods that use them
(``arch.kernels`` returns the NNGP and NTK together, so GPk and NTKJk share one pass; the
seed's published formulas of one normalization are computed together; the generating kernel
is reused when a method has the same one).

A method with ``holdout_fraction = h`` fits on the first :math:`m - \lfloor h m\rfloor` rows
of the training split (:func:`ntklab.data.fit_rows`) and is tested on the test split, like
the seed's Keras networks (SPEC §6). An ``ntk_time`` method predicts at
:math:`T = \text{epochs} \times \lceil m_\text{fit} / \text{batch\_size}\rceil` steps
(SPEC §6, time matching); with ``f0 = "network"`` it starts from the initial function of the
network that its ``network`` method trains in the same trial (same seed, same dtype: one
forward pass), so one network is compared with its own linearization.

The package, one idea a module: :mod:`.context` (the trial's seeds, data and shared
kernels) <- :mod:`.methods` (every method kind on that context, recorded) <-
:mod:`.stacking` (networks of a batch of trials trained stacked) <- :mod:`.run`
(:func:`run_trial`, :func:`run_trials`).
"""

from __future__ import annotations

from .context import TrialContext, make_data, methods_due, network_seed, trial_seed
from .methods import DIVERGED_NAN, critical_lr, initial_outputs, record_curve, sgd_steps
from .run import run_trial, run_trials
from .stacking import NetworkJob, train_networks

__all__ = [
    "run_trial",
    "methods_due",
    "trial_seed",
    "network_seed",
    "initial_outputs",
    "sgd_steps",
    "TrialContext",
    "make_data",
    "run_trials",
    "train_networks",
    "NetworkJob",
    "critical_lr",
    "record_curve",
    "DIVERGED_NAN",
]
