"""Legacy-shaped data roots of any size for the benchmarks: df02 CSV, a flat latent store, snip folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from morphlake import DEFAULT_MODEL_NAME
from morphlake.ingest.latents import latent_store_dir
from morphlake.ingest.ledger import SNIP_SUBDIR
from morphlake.lake.data_root import DF02_RELPATH

PER_EXPERIMENT = 10_000
DIM = 100


def df02_frame(
    snips: int, rng: np.random.Generator, per_experiment: int = PER_EXPERIMENT, start: int = 0
) -> pl.DataFrame:
    """df02 rows from row `start` on: experiments of `per_experiment` snips, embryos of 100 time points, 1 in 50
    rows unusable."""
    frame = pl.DataFrame(pl.int_range(start, start + snips, eager=True).alias("i")).with_columns(
        exp=pl.format("2024{}", (pl.col("i") // per_experiment + 100000).cast(pl.String).str.slice(1)),
        embryo=(pl.col("i") % per_experiment) // 100,
        t=pl.col("i") % 100,
    )
    embryo_id = pl.format("{}_{}_e{}", "exp", pl.lit("A01"), pl.col("embryo").cast(pl.String).str.zfill(3))
    control = pl.col("embryo") % 2 == 0
    return frame.select(
        snip_id=pl.format("{}_t{}", embryo_id, pl.col("t").cast(pl.String).str.zfill(4)),
        embryo_id=embryo_id,
        experiment_date="exp",
        well=pl.lit("A01"),
        time_int="t",
        **{"Time Rel (s)": pl.col("t") * 1800.0},
        predicted_stage_hpf=24 + pl.col("t") * 0.5,
        surface_area_um=pl.Series(rng.normal(1.8e5, 1.5e4, snips)),
        short_pert_name=pl.when(control).then(pl.lit("wt")).otherwise(pl.lit("atf6")),
        phenotype=pl.when(control).then(pl.lit("wt")).otherwise(pl.lit("atf6_mutant")),
        control_flag=control,
        temperature=pl.lit(28.5),
        medium=pl.lit("E3"),
        use_embryo_flag=pl.col("i") % 50 != 0,
        length_um=pl.Series(rng.normal(2500, 30, snips)).round(1),
        width_um=pl.Series(rng.normal(480, 20, snips)).round(1),
        master_perturbation=pl.lit("wt"),
        microscope=pl.lit("YX1"),
        start_age_hpf=pl.lit(24.0),
    )


def write_df02(root: Path, df02: pl.DataFrame) -> None:
    (root / DF02_RELPATH).parent.mkdir(parents=True)
    df02.write_csv(root / DF02_RELPATH)
    model = root / "models" / "legacy" / DEFAULT_MODEL_NAME
    model.mkdir(parents=True)
    (model / "model_config.json").write_text(json.dumps({"name": "SeqVAEConfig", "latent_dim": DIM, "zn_frac": 0.2}))


def write_snip_root(root: Path, snips: int, *, per_experiment: int, pool: int, png_experiments: int = 0) -> list[str]:
    """df02 and one noisy brightfield snip per row, as hard links to a pool of `pool` distinct snips (so each
    decode costs what a real one does); the last `png_experiments` experiments hold PNGs, the rest JPEGs.
    Returns the experiments in order."""
    from benchmarks.common import make_snips

    df02 = df02_frame(snips, np.random.default_rng(0), per_experiment)
    write_df02(root, df02)
    experiments = df02["experiment_date"].unique(maintain_order=True).to_list()
    pngs = set(experiments[len(experiments) - png_experiments :]) if png_experiments else set()
    distinct = {
        kind: make_snips(root.parent / "pool", min(pool, snips), kind=kind)
        for kind in (["noisy-jpeg"] if len(pngs) < len(experiments) else []) + (["noisy-png"] if pngs else [])
    }
    for i, (snip, exp) in enumerate(df02.select("snip_id", "experiment_date").iter_rows()):
        source = Path(distinct["noisy-png" if exp in pngs else "noisy-jpeg"][i % min(pool, snips)].path)
        path = root / SNIP_SUBDIR / exp / f"{snip}{source.suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, path)
    return experiments


def write_data_root(root: Path, snips: int, seed: int = 0) -> int:
    """df02 CSV + latent store CSVs (random z) + empty snip folders; returns the number of df02 rows (df03's)."""
    rng = np.random.default_rng(seed)
    df02 = df02_frame(snips, rng)
    write_df02(root, df02)
    latent_store_dir(root, DEFAULT_MODEL_NAME).mkdir(parents=True)
    write_store(root, df02, rng)
    return df02.height


def write_store(root: Path, df02: pl.DataFrame, rng: np.random.Generator) -> None:
    """One latent store CSV (random z) and an empty snip folder per experiment of these df02 rows."""
    store = latent_store_dir(root, DEFAULT_MODEL_NAME)
    names = [f"z_mu_{j:02d}" for j in range(DIM)] + [f"z_sigma_{j:02d}" for j in range(DIM)]
    for (exp,), part in df02.select("experiment_date", "embryo_id", "snip_id").group_by("experiment_date"):
        z = rng.standard_normal((part.height, 2 * DIM), dtype=np.float32)
        part.hstack(pl.DataFrame(z, schema=names)).write_csv(store / f"morph_latents_{exp}.csv")
        (root / SNIP_SUBDIR / exp).mkdir(parents=True)  # images are not part of this benchmark


def add_experiment(root: Path, start: int, seed: int = 1) -> str:
    """Append one experiment of PER_EXPERIMENT snips (rows from `start` on) to df02 and the store; returns its name."""
    rng = np.random.default_rng(seed)
    df02 = df02_frame(PER_EXPERIMENT, rng, start=start)
    with open(root / DF02_RELPATH, "ab") as handle:
        df02.write_csv(handle, include_header=False)
    write_store(root, df02, rng)
    return df02["experiment_date"][0]
