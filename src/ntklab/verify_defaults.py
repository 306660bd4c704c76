"""The defaults of :func:`ntklab.verify.verify` and :func:`ntklab.verify.verify_published`.

The one place they are written: the functions' signatures and the flags of ``ntklab
verify`` (their defaults and help) read them from here. A module of its own, importing
nothing, so that the command line reads them without loading numpy or torch.
"""

from __future__ import annotations

#: :func:`~ntklab.verify.verify`: hidden width and random networks per architecture.
WIDTH = 128
N_SAMPLES = 200
#: :func:`~ntklab.verify.verify_published`: hidden width and random networks per formula.
PUBLISHED_WIDTH = 256
PUBLISHED_N_SAMPLES = 400
#: :func:`~ntklab.verify.verify`: the dimension of its input points.
IN_FEATURES = 4
#: Both: unit-norm input points, root seed (points and networks), NNGP estimator.
N_POINTS = 8
SEED = 0
NNGP_ESTIMATOR = "last_hidden"
#: :func:`~ntklab.verify.verify`: the architectures and activations checked.
DEPTHS = (1, 2, 3)
PARAMETERIZATIONS = ("jacot", "arora", "paper", "standard")
ACTIVATIONS = ("relu",)
