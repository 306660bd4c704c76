"""The keys each kind of method accepts in a study config (:data:`KINDS`), which kinds are
tuned on the training rows (:data:`TUNED_KINDS`; of them, :data:`FEATURE_KINDS` read the
features rather than the rows on the sphere) or can generate data
(:data:`GENERATOR_KINDS`), and which keys a kernel method takes from its network method
(:data:`FROM_NETWORK`)."""

from __future__ import annotations

from ..published import PUBLISHED_KERNELS

__all__ = [
    "ARCH_FIELDS",
    "NETWORK_FIELDS",
    "COMMON_FIELDS",
    "KINDS",
    "TUNED_KINDS",
    "FEATURE_KINDS",
    "GENERATOR_KINDS",
    "FROM_NETWORK",
    "PUBLISHED_NAMES",
]

ARCH_FIELDS = (
    "depth", "parameterization", "sigma_w", "sigma_b", "sigma_w1", "activation",
    "quadrature_degree",
)  # fmt: skip
NETWORK_FIELDS = (
    "width",
    "lr",
    "epochs",
    "batch_size",
    "centered",
    "record_every",
    "equivalence",
    "max_kernel_points",
    "holdout_fraction",
    "lazy_scale",
    "track_lambda",
)
#: Keys each method kind accepts (besides name, kind, label, family, trials).
KINDS: dict[str, tuple[str, ...]] = {
    "network": ARCH_FIELDS + NETWORK_FIELDS,
    "ntk": ARCH_FIELDS + ("ridge", "holdout_fraction", "network"),
    "nngp": ARCH_FIELDS + ("ridge", "holdout_fraction", "network"),
    "ntk_time": ARCH_FIELDS + ("lr", "epochs", "batch_size", "holdout_fraction", "network", "f0"),
    "laplacian": ("length_scale", "ridge", "holdout_fraction"),
    "rbf": ("length_scale", "ridge", "holdout_fraction"),
    "published": (
        "kernel",
        "normalization",
        "amplitude",
        "length_scale",
        "ridge",
        "holdout_fraction",
    ),
    # tuned on the training rows (ntklab.tuned): real-data benchmarks
    "gp_ntk": ARCH_FIELDS + ("max_depth",),
    "gp_nngp": ARCH_FIELDS + ("max_depth",),
    "gp_rbf": ("length_scale",),
    "gp_matern": ("length_scale",),
    "ntk_cv": ARCH_FIELDS,
    "nngp_cv": ARCH_FIELDS,
    "rbf_cv": ("length_scale",),
    "laplacian_cv": ("length_scale",),
    "random_forest": (),
    "gradient_boosting": (),
    "network_cv": ARCH_FIELDS + ("epochs", "grid_widths", "grid_lr_scales", "validation_fraction"),
}
#: The kinds tuned on the training rows (:mod:`ntklab.tuned`); they also fit class labels.
TUNED_KINDS = (
    "gp_ntk", "gp_nngp", "gp_rbf", "gp_matern", "ntk_cv", "nngp_cv", "rbf_cv",
    "laplacian_cv", "random_forest", "gradient_boosting", "network_cv",
)  # fmt: skip
#: Tuned kinds that split on one feature at a time (trees): on real data they read the
#: standardized features, not the rows projected onto the sphere (``Dataset.X_features``),
#: since the projection mixes every feature into each coordinate.
FEATURE_KINDS = ("random_forest", "gradient_boosting")
GENERATOR_KINDS = ("ntk", "nngp", "laplacian", "rbf", "published")
COMMON_FIELDS = ("name", "kind", "label", "family", "trials")
#: Keys a kernel method with ``network = "NAME"`` takes from that network method.
FROM_NETWORK: dict[str, tuple[str, ...]] = {
    "ntk": ARCH_FIELDS,
    "nngp": ARCH_FIELDS,
    "ntk_time": ARCH_FIELDS + ("lr", "epochs", "batch_size", "holdout_fraction", "width"),
}
#: The seed's nine published kernel formulas (SPEC §6), by name.
PUBLISHED_NAMES = PUBLISHED_KERNELS
