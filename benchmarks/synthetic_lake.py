"""A lake of any size written straight as Parquet (no ingest, no embed): df02, a snip ledger, and embeddings
whose z_mu follows stage and perturbation, half from a legacy store and half ONNX, plus an ONNX-only
companion model for the legacy half (so the report's agreement section has data)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.legacy_root import DIM, df02_frame
from morphlake import DEFAULT_MODEL_NAME
from morphlake.demo.images import embryo_snip
from morphlake.ingest.ledger import LEDGER_SCHEMA
from morphlake.lake.embeddings_table import conform
from morphlake.lake.layout import Lake

COMPANION = f"{DEFAULT_MODEL_NAME}_onnx"
IMAGES = 48  # distinct snip images the ledger's rows point at (thumbnails need real files)


def write_images(folder: Path, rng: np.random.Generator) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(IMAGES):
        path = folder / f"snip{i:02d}.jpg"
        embryo_snip(rng, 24 + i % 24, ["wt", "atf6"][i % 2]).save(path, quality=92)
        paths.append(str(path))
    return paths


def latent(df02: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """z_mu with structure: a few dimensions follow stage, a few perturbation, the nuisance block noise."""
    n = df02.height
    stage = ((df02["predicted_stage_hpf"].to_numpy() - 24) / 25).astype(np.float32)
    pert = (df02["short_pert_name"].to_numpy() != "wt").astype(np.float32)
    z = rng.standard_normal((n, DIM), dtype=np.float32) * 0.3
    z[:, 20:40] += np.outer(stage, rng.standard_normal(20).astype(np.float32))
    z[:, 40:50] += np.outer(pert, rng.standard_normal(10).astype(np.float32))
    return z


def embeddings_table(frame: pl.DataFrame, z: np.ndarray, *, model: str, source: str) -> pa.Table:
    columns = {
        "snip_id": frame["snip_id"].to_arrow(),
        "experiment_date": frame["experiment_date"].to_arrow(),
        "model_name": pa.array([model] * frame.height, pa.string()),
        "source": pa.array([source] * frame.height, pa.string()),
        "encoder_weights": pa.array(["trained" if source == "onnx" else None] * frame.height, pa.string()),
        "model_sha256": pa.array(["0" * 64 if source == "onnx" else None] * frame.height, pa.string()),
        "run_id": pa.array(["synthetic"] * frame.height, pa.string()),
    }
    for j in range(z.shape[1]):
        columns[f"z_mu_{j:02d}"] = pa.array(z[:, j])
    return conform(pa.table(columns), z.shape[1])


def write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_lake(
    lake_root: Path, snips: int, *, seed: int = 0, per_experiment: int = 10_000, companion: bool = True
) -> Lake:
    lake = Lake.at(lake_root)
    rng = np.random.default_rng(seed)
    df02 = df02_frame(snips, rng, per_experiment).with_columns(
        short_pert_name=pl.when(pl.col("control_flag")).then(pl.lit("wt")).otherwise(pl.lit("atf6"))
    )
    images = write_images(lake.root.parent / "images", rng)
    z = latent(df02, rng)
    legacy = np.arange(snips) % 2 == 0  # half the snips from the legacy store
    for (exp,), part in df02.with_row_index("i").group_by("experiment_date", maintain_order=True):
        rows = part["i"].to_numpy()
        frame = part.drop("i")
        write(lake.partition_file("df02", experiment_date=exp), frame.to_arrow())
        ids = frame["snip_id"].to_list()
        ledger = {
            "snip_id": ids,
            "experiment_date": [exp] * len(ids),
            "path": [images[i % IMAGES] for i in rows],
            "format": ["JPEG"] * len(ids),
            "width": [256] * len(ids),
            "height": [576] * len(ids),
            "mode": ["L"] * len(ids),
            "file_size": [10_000] * len(ids),
            "mtime_ns": [0] * len(ids),
            "fingerprint": [hashlib.blake2b(s.encode(), digest_size=16).hexdigest() for s in ids],
            "image_status": [None] * len(ids),  # every image readable
        }
        write(lake.partition_file("snips", experiment_date=exp), pa.Table.from_pydict(ledger, schema=LEDGER_SCHEMA))
        is_legacy = legacy[rows]
        parts = [
            embeddings_table(
                frame.filter(pl.Series(is_legacy)), z[rows][is_legacy], model=DEFAULT_MODEL_NAME, source="legacy_csv"
            ),
            embeddings_table(
                frame.filter(pl.Series(~is_legacy)), z[rows][~is_legacy], model=DEFAULT_MODEL_NAME, source="onnx"
            ),
        ]
        table = pa.concat_tables(parts).sort_by("snip_id")
        write(lake.partition_file("embeddings", model_name=DEFAULT_MODEL_NAME, experiment_date=exp), table)
        if not companion:
            continue
        drift = rng.standard_normal((int(is_legacy.sum()), DIM), dtype=np.float32) * 0.01
        other = embeddings_table(
            frame.filter(pl.Series(is_legacy)), z[rows][is_legacy] + drift, model=COMPANION, source="onnx"
        )
        write(lake.partition_file("embeddings", model_name=COMPANION, experiment_date=exp), other)
    return lake


if __name__ == "__main__":  # python -m benchmarks.synthetic_lake LAKE SNIPS: in its own process (a small parent)
    import sys

    write_lake(Path(sys.argv[1]), int(sys.argv[2]))
