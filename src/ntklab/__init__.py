"""ntklab: test neural tangent kernel theory against real trained networks.

The public API is re-exported here; the modules follow the data flow
config -> data -> architecture (kernels + networks) -> training / predict -> study -> store -> report.

``import ntklab`` imports none of them: each public name (listed in ``__init__.pyi``) and
each submodule (e.g. ``ntklab.data``) is imported on first use, so that the command line and ``import ntklab``
start fast (torch, scikit-learn, pandas and matplotlib are loaded only by what needs them).
"""

from __future__ import annotations

from ._lazy import attach_stub

__version__ = "0.1.0"

#: The public names and the submodules reachable as attributes (``ntklab.data``) are listed
#: once, in ``__init__.pyi`` (what static analysers and IDEs read); each is imported on first
#: access.
__getattr__, __dir__, __all__ = attach_stub(__name__, __file__, globals())
