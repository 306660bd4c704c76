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

__all__ = ["SeedResult", "SEED_TABLE", "SEED_GENERATOR", "SEED_N_TRIALS", "seed_table"]


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
