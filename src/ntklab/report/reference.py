"""The seed's published results (SPEC §4; the seed's appendix table 6.3), typed in once.

Everything the report says about the seed (its percentage changes from 1 to 2 hidden layers,
its NN/NTK ratios) is *computed* from :data:`SEED_TABLE`, never typed in a second time.

References
----------
The seed paper in ``paper/`` (section 4 and appendix 6.3): mean test RMSE over 50 trials
with the standard error of the mean, data simulated from the NTKB1 kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

__all__ = [
    "SeedResult",
    "SEED_TABLE",
    "SEED_GENERATOR",
    "SEED_N_TRIALS",
    "SEED_NTK_FAMILIES",
    "SEED_DEPTHS",
    "AttributionStep",
    "ATTRIBUTION_CHAIN",
    "attribution_chain",
    "attribution_methods",
    "same_time_pair",
    "seed_table",
]


class SeedResult(NamedTuple):
    """One row of the seed's table: its label, mean test RMSE and standard error."""

    label: str
    mean_rmse: float
    se: float


#: Number of trials behind every row of the seed's table.
SEED_N_TRIALS = 50

#: The generating kernel of the seed's data (SPEC §4).
SEED_GENERATOR = "NTKB1"

#: The seed's table, keyed by the method names ntklab's ``paper`` presets use.
SEED_TABLE: dict[str, SeedResult] = {
    "NN1": SeedResult("NN (1 layer)", 0.207151, 0.0022229),
    "NN2": SeedResult("NN (2 layers)", 0.191916, 0.00202076),
    "GP1": SeedResult("GP (1 layer)", 0.0634271, 0.000419303),
    "GP2": SeedResult("GP (2 layers)", 0.0635353, 0.000420746),
    "NTKA1": SeedResult("NTKA (1 layer)", 0.0808606, 0.000538324),
    "NTKA2": SeedResult("NTKA (2 layers)", 0.0836348, 0.000625299),
    "NTKJ1": SeedResult("NTKJ (1 layer)", 0.063008, 0.000412339),
    "NTKJ2": SeedResult("NTKJ (2 layers)", 0.062946, 0.000412801),
    "NTKB1": SeedResult("NTKB (1 layer)", 0.0629396, 0.000413537),
    "NTKB2": SeedResult("NTKB (2 layers)", 0.0629477, 0.000413594),
    "K1": SeedResult("Laplacian (K1)", 0.103857, 0.000862339),
}


def seed_table() -> pd.DataFrame:
    """The seed's table as a DataFrame (index: method; columns: label, mean_rmse, se, n)."""
    df = pd.DataFrame.from_dict(
        {k: v._asdict() for k, v in SEED_TABLE.items()}, orient="index"
    ).rename_axis("method")
    df["n"] = SEED_N_TRIALS
    return df


#: The seed's NTK families (its rows NTKA1 ... NTKB2) and the depths of its networks.
SEED_NTK_FAMILIES = ("NTKA", "NTKJ", "NTKB")
SEED_DEPTHS = (1, 2)


class AttributionStep(NamedTuple):
    """One step of :data:`ATTRIBUTION_CHAIN`: what changes from the previous step (``cause``)
    and the method that has the change (``method``, a template with ``{k}`` = depth)."""

    cause: str
    method: str


#: The walk from the seed's NTK row to its network row, one cause at a time (SPEC §7.2),
#: per depth k = 1, 2. The ``seed`` presets define methods under exactly these names and the
#: report's attribution table walks them in this order, so both read this one constant.
ATTRIBUTION_CHAIN: tuple[AttributionStep, ...] = (
    AttributionStep("the seed's NTK row (published formula and normalization)", "NTKJ{k}"),
    AttributionStep("normalization ρ_pub → ρ_cor", "NTKJ{k}-corrected"),
    AttributionStep("the kernel the network really has (jacot, σ_w = 1, β = 1)", "NTK-NN{k}"),
    AttributionStep("670 → 469 training points (those the network saw)", "NTK-NN{k}-469"),
    AttributionStep("T = ∞ → the seed's training time (f₀ = 0)", "NTK-NN{k}-Tmean"),
    AttributionStep("f₀ = 0 → f₀ of the very network trained", "NTK-NN{k}-T"),
    AttributionStep("its linearization → the trained network itself", "NN{k}"),
)


def attribution_chain(depth: int) -> list[AttributionStep]:
    """:data:`ATTRIBUTION_CHAIN` with the depth filled in (``NTKJ1``, ``NTKJ1-corrected``, ...)."""
    return [AttributionStep(s.cause, s.method.format(k=depth)) for s in ATTRIBUTION_CHAIN]


def attribution_methods(depth: int | None = None) -> list[str]:
    """The method names of the chain at ``depth`` (default: every depth of the seed)."""
    depths = SEED_DEPTHS if depth is None else (depth,)
    return [s.method for k in depths for s in attribution_chain(k)]


def same_time_pair(depth: int) -> tuple[str, str]:
    """``(network, NTK at the network's training time with its f₀)``: the chain's last two
    methods, e.g. ``("NN1", "NTK-NN1-T")``."""
    chain = attribution_chain(depth)
    return chain[-1].method, chain[-2].method
