"""`morphlake ingest`: df02, training metadata, the snip ledger and the legacy latent store -> lake."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest import read_df02, read_latent_store, read_train, scan_snips
from ingest.errors import InputError, Skipped
from ingest.ledger import snip_dir
from morphlake.embeddings_table import conform, merge, partition_dim, read_partition
from morphlake.layout import Lake
from morphlake.publish import Transaction
from morphlake.runs import RunRecord
from morphlake.step import StepResult, run_step

log = logging.getLogger("morphlake")

DF02_RELPATH = Path("metadata") / "combined_metadata_files" / "embryo_metadata_df02.csv"
TRAIN_CSV = "embryo_metadata_df_train.csv"
LEGACY_LATENT_DIM = 100


def df02_path(root: Path) -> Path:
    return Path(root) / DF02_RELPATH


def train_files(root: Path) -> dict[str, Path]:
    """train_name -> training metadata CSV under <root>/training_data/*/."""
    base = Path(root) / "training_data"
    return {p.parent.name: p for p in sorted(base.glob(f"*/{TRAIN_CSV}"))} if base.is_dir() else {}


def model_latent_dim(data_root: Path, model_name: str) -> int:
    """latent_dim from the model folder's model_config.json, else the legacy encoder's 100."""
    config = Path(data_root) / "models" / "legacy" / model_name / "model_config.json"
    try:
        return int(json.loads(config.read_text()).get("latent_dim", LEGACY_LATENT_DIM))
    except (OSError, ValueError, TypeError, AttributeError):
        return LEGACY_LATENT_DIM


def _previous_ledger(lake: Lake, experiment: str) -> dict[str, dict]:
    path = lake.partition_file("snips", experiment_date=experiment)
    if not path.is_file():
        return {}
    return {row["path"]: row for row in pq.read_table(path, partitioning=None).to_pylist()}


def _stage_latents(txn: Transaction, lake: Lake, run_id: str, model_name: str, data_root: Path,
                   experiments: list[str], fingerprints: dict[str, str], record: RunRecord) -> list[Skipped]:
    skipped, rows, styles = [], 0, {}
    dim = model_latent_dim(data_root, model_name)
    for experiment, table, style, bad in read_latent_store(data_root, model_name, experiments, expected_dim=dim,
                                                           skip_bad_files=True):
        skipped += bad
        if table is None:
            continue
        styles[experiment] = style
        n = table.num_rows
        table = table.append_column("model_name", pa.array([model_name] * n, pa.string()))
        table = table.append_column("source", pa.array(["legacy_csv"] * n, pa.string()))
        table = table.append_column("run_id", pa.array([run_id] * n, pa.string()))
        table = table.append_column("image_fingerprint", pa.array(
            [fingerprints.get(s) for s in table["snip_id"].to_pylist()], pa.string()))
        where = f"embeddings/model_name={model_name}/experiment_date={experiment}"
        existing = read_partition(lake, model_name, experiment)
        if existing is not None:
            # The store is re-read in full: drop old legacy rows, keep onnx rows the store does not cover.
            existing = existing.filter(pc.not_equal(existing["source"], "legacy_csv"))
        new = conform(table, partition_dim(table))
        merged = merge(existing, new, table["snip_id"], where)
        txn.stage("embeddings", {"model_name": model_name, "experiment_date": experiment}, merged,
                  expected_rows=merged.num_rows)
        rows += n
    record.count("latent_rows", rows)
    record.set("latent_store", {"model_name": model_name, "experiments": sorted(styles), "z_naming": styles})
    return skipped


def ingest(lake: Lake, root: Path, data_root: Path, model_name: str, experiments: list[str] | None = None,
           allow_partial: bool = False) -> StepResult:
    """Read every legacy input and publish the lake's raw tables and legacy embeddings."""
    root, data_root = Path(root).absolute(), Path(data_root).absolute()
    params = {"root": str(root), "data_root": str(data_root), "model_name": model_name,
              "experiments": experiments, "allow_partial": allow_partial}

    def body(txn: Transaction, record: RunRecord) -> list[Skipped]:
        with record.timed("read_df02"):
            df02, skipped = read_df02(df02_path(root), experiments)
        exps = sorted(set(df02["experiment_date"].to_pylist()))
        record.set("experiments", exps)
        record.count("df02_rows", df02.num_rows)
        known = set(df02["snip_id"].to_pylist())
        for exp in exps:
            part = df02.filter(pc.equal(df02["experiment_date"], exp))
            txn.stage("df02", {"experiment_date": exp}, part, expected_rows=part.num_rows)
        with record.timed("read_train"):
            for name, path in train_files(root).items():
                try:
                    table, bad = read_train(path, name)
                except InputError as exc:  # a whole file that cannot be used: skipped in partial mode
                    skipped.append(Skipped("train", name, str(path), str(exc).replace("\n  hint:", ";")))
                    continue
                skipped += bad
                txn.stage("train", {"train_name": name}, table, expected_rows=table.num_rows)
                record.count(f"train_rows:{name}", table.num_rows)
        fingerprints: dict[str, str] = {}
        with record.timed("scan_snips"):
            snips = 0
            for exp in exps:
                if not snip_dir(data_root, exp).is_dir():
                    skipped.append(Skipped("snips", exp, str(snip_dir(data_root, exp)),
                                           "experiment has df02 rows but no snip folder"))
                    continue
                ledger, bad = scan_snips(data_root, exp, known, _previous_ledger(lake, exp))
                skipped += bad
                snips += ledger.num_rows
                fingerprints.update(zip(ledger["snip_id"].to_pylist(), ledger["fingerprint"].to_pylist()))
                txn.stage("snips", {"experiment_date": exp}, ledger, expected_rows=ledger.num_rows)
            record.count("snips", snips)
        with record.timed("read_latents"):
            skipped += _stage_latents(txn, lake, record.run_id, model_name, data_root, exps, fingerprints, record)
        return skipped

    return run_step(lake, "ingest", params, body, allow_partial)
