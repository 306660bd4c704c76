"""Reports of stored runs: tables with standard errors beside the seed's, the paper's
analyses computed from the rows, the attribution of the seed's NTK → NN gap and verdicts on
its claims, figures (PNG and SVG) and a self-contained HTML file.

Modules, each importing only those above it: ``reference`` (the seed's published numbers),
``configs`` (the stored config read back as the schema's models),
``stats`` (paired tests, TOST, Holm); ``runs`` (a stored run, :func:`load_run`, settings); ``notes`` (what is incomplete);
``protocol`` (is it the seed's experiment, which method generated the data); ``tables`` (main
table, layer change, ratios, paired differences); ``equivalence`` (TOST ties, width sweeps);
``attribution`` (the seed's NTK → NN gap one cause at a time, each network beside its NTK
at the same time), ``verdicts`` (on the seed's claims); ``figures``; ``render`` (cells and
tables as Markdown, LaTeX, HTML via pandas); ``phase`` and ``phase_claims`` (the
phase diagram of a width × lazy_scale / lr sweep: cells, drift exponents, crossovers,
verdicts on its anchor claims); ``phase_figures`` (its heatmaps); ``sections`` (what a
report shows);
``document`` (whole reports in each format, :func:`write_report`).

>>> from ntklab.report import load_run, main_table, layer_change   # doctest: +SKIP
>>> run = load_run("runs/paper-quick")                              # doctest: +SKIP
>>> main_table(run)                                                 # doctest: +SKIP
"""

from __future__ import annotations

from .._lazy import attach_stub

#: The public names, each imported from the submodule of :mod:`ntklab.report` that defines it
#: on first access (so that importing the package loads neither pandas nor matplotlib), and
#: the submodules reachable as attributes (``ntklab.report.tables``): listed once, in
#: ``__init__.pyi``.
__getattr__, __dir__, __all__ = attach_stub(__name__, __file__, globals())
