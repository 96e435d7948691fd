"""The legacy Build06 way to df03, for comparison: pandas read_csv, merge, to_csv.

Run by benchmarks/df03.py in its own process (so its peak memory is its own):
  python -m benchmarks.legacy_df03 DF02_CSV LATENT_FOLDER OUT_CSV
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def legacy_df03(df02_csv: Path, latent_folder: Path, out_csv: Path) -> int:
    df02 = pd.read_csv(df02_csv)
    latents = pd.concat(
        [pd.read_csv(p) for p in sorted(Path(latent_folder).glob("morph_latents_*.csv"))], ignore_index=True
    )
    z_mu = [c for c in latents.columns if c.startswith("z_mu_")]
    df03 = pd.merge(df02, latents[["snip_id"] + z_mu], on="snip_id", how="inner")  # every df02 row, z_mu only
    df03.to_csv(out_csv, index=False)
    return len(df03)


if __name__ == "__main__":
    print(legacy_df03(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
