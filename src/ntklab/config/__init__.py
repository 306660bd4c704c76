r"""Study configuration: TOML files and presets, validated into a :class:`StudyPlan`.

A study config has four parts (see ``ntklab presets`` and ``src/ntklab/presets/*.toml``)::

    [study]                      # name, description, trials, seed
    [data]                       # n, d, n_train, noise, or dataset = "diabetes"
    [data.generator]             # the kernel whose Gaussian process generates y
    [[methods]]                  # name, kind and the kind's settings (one table per method)
    [sweep]                      # optional: dotted field -> list of values (cartesian product)

Method kinds and the keys each accepts (anything else is an error):

============ ==========================================================================
kind         keys (besides ``name``, ``kind``, ``label``, ``family``, ``trials``)
============ ==========================================================================
network      depth, parameterization, sigma_w, sigma_b, sigma_w1, width, lr, epochs,
             batch_size, centered, record_every, equivalence, max_kernel_points,
             holdout_fraction
ntk, nngp    depth, parameterization, sigma_w, sigma_b, sigma_w1, ridge, holdout_fraction,
             network (take depth, parameterization and sigmas from that network method)
ntk_time     depth, parameterization, sigma_w, sigma_b, sigma_w1, lr, epochs, batch_size,
             holdout_fraction, network, f0 (the NTK prediction after
             ``epochs × ⌈m_fit / batch_size⌉`` gradient steps, SPEC §3 and §6 "time
             matching"; with ``network = "NN1"`` everything but ``f0`` comes from NN1, and
             ``f0 = "network"`` starts from the initial function of the very network NN1
             trains in that trial; ``f0 = "zero"``, the default, is the mean over
             initializations)
laplacian    length_scale, ridge, holdout_fraction
rbf          length_scale, ridge, holdout_fraction
published    kernel (one of the seed's nine formulas, SPEC §6: GP1 GP2 NTKA1 NTKA2 NTKB1
             NTKB2 NTKJ1 NTKJ2 K1), normalization ("published" or "corrected"),
             amplitude and length_scale (K1 only), ridge, holdout_fraction
============ ==========================================================================

The kinds network, ntk, nngp and ntk_time (and ``[data.generator]``'s ntk and nngp) also take
``activation`` (default ``"relu"``; ``erf``, ``leaky_relu``, ``"abrelu(a, b)"``, ``gelu``,
``tanh``, ``softplus``, ``silu``: :mod:`ntklab.activations`) and ``quadrature_degree`` (the
Gauss–Hermite degree of gelu, tanh, softplus and silu; default 32, at least 4).

``ridge`` is the λ of kernel ridge regression, :math:`k(x_*, X)(K + \lambda I)^{-1} y`: the
same λ as ``alpha`` of :class:`~ntklab.KernelRegressor` (the config key keeps its name);
0, the default, interpolates the training data (a kernel matrix that then needs more than
1e-6 × its mean diagonal of jitter makes the method fail, asking for a ridge).

``trials`` caps the trials a method runs in (trials 0 .. trials−1), so that an expensive
method can run in fewer trials than the cheap ones; ``holdout_fraction = h`` fits a method on
the first :math:`m - \lfloor h m \rfloor` training rows only (Keras's ``validation_split``,
which the seed's networks used: SPEC §6). ``[data.generator]`` accepts the kinds ntk, nngp,
laplacian, rbf and published.

Sweep keys are dotted paths: ``"data.noise"``, ``"methods.NN1.width"`` (one method, by name)
or ``"methods.*.width"`` (every method whose kind accepts ``width``). Nested TOML tables
(``[sweep.methods.NN1]`` with ``width = [...]``) are the same thing. The sweep is the
cartesian product of all lists, in the order the keys appear.

``--set key=value`` overrides (:func:`apply_override`) use the same dotted paths
(``study.trials=5``, ``methods.NN2.epochs=100``, ``methods.*.width=256``,
``data.generator.depth=2``, ``sweep.methods.*.width=[64,128]``); the value is parsed as a
TOML value (``true``, ``0.5``, ``"auto"``, ``[1, 2]``); a bare word is a string.

Modules: :mod:`~ntklab.config.schema` (the models and their validation) <-
:mod:`~ntklab.config.loading` (TOML, presets, ``extends``, overrides) <-
:mod:`~ntklab.config.sweeps` (sweep points) <- :mod:`~ntklab.config.plan` (:class:`StudyPlan`,
:func:`load_config`).
"""

from __future__ import annotations

from .loading import (
    apply_override,
    load_raw,
    parse_override,
    preset_names,
    read_toml,
    resolve_networks,
    select_methods,
)
from .plan import Point, StudyPlan, list_presets, load_config, plan_study
from .schema import (
    FROM_NETWORK,
    GENERATOR_KINDS,
    KINDS,
    PUBLISHED_NAMES,
    ConfigError,
    DataConfig,
    GeneratorSpec,
    KernelSpec,
    MethodConfig,
    ReportSection,
    StudyConfig,
    StudySection,
    format_validation_error,
    resolved_dict,
)
from .sweeps import sweep_points

#: The former private name of :func:`read_toml` (kept for callers of ``ntklab.config``).
_read_toml = read_toml

__all__ = [
    "apply_override",
    "ConfigError",
    "DataConfig",
    "format_validation_error",
    "FROM_NETWORK",
    "GENERATOR_KINDS",
    "GeneratorSpec",
    "KernelSpec",
    "KINDS",
    "list_presets",
    "load_config",
    "load_raw",
    "MethodConfig",
    "parse_override",
    "plan_study",
    "Point",
    "preset_names",
    "PUBLISHED_NAMES",
    "read_toml",
    "ReportSection",
    "resolve_networks",
    "resolved_dict",
    "select_methods",
    "StudyConfig",
    "StudyPlan",
    "StudySection",
    "sweep_points",
]
