"""`morphlake ingest`: df02, training metadata, the snip ledger and the legacy latent store -> lake."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from morphlake.common.frames import polars_frame
from morphlake.common.skipped import some
from morphlake.common.zcolumns import flat_z_mu, z_columns_in
from morphlake.errors import MorphlakeError
from morphlake.ingest import read_df02, read_latent_store, read_train, scan_snips
from morphlake.ingest.errors import InputError, Skipped
from morphlake.ingest.ledger import SNIP_SUBDIR, snip_dir
from morphlake.lake.arrays import string_array
from morphlake.lake.data_root import DataRoot
from morphlake.lake.embeddings_table import merge, partition_dim
from morphlake.lake.embeddings_table import model_latent_dim as lake_latent_dim
from morphlake.lake.layout import Lake, read_part
from morphlake.lake.publish import Transaction
from morphlake.lake.runs import RunRecord
from morphlake.lake.snip_ledger import available
from morphlake.steps.embedding_rows import Provenance, embedding_rows
from morphlake.steps.lifecycle import LakeRun, RunResult, lake_run

log = logging.getLogger("morphlake")


def model_latent_dim(data_root: Path, model_name: str, lake: Lake | None = None) -> int | None:
    """latent_dim from the model folder's model_config.json, else the width of the model's embeddings in the
    lake, else None (the store's first file decides, and the others must agree)."""
    config = DataRoot.at(data_root).model_config(model_name)
    try:
        return int(json.loads(config.read_text())["latent_dim"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return lake_latent_dim(lake, model_name) if lake is not None else None


def previous_ledger(lake: Lake, experiment: str) -> dict[str, dict]:
    """path -> the lake's ledger row, so a rescan reuses the fingerprints of unchanged files."""
    path = lake.partition_file("snips", experiment_date=experiment)
    if not path.is_file():
        return {}
    return {row["path"]: row for row in read_part(path).to_pylist()}


def _stage_latents(
    run: LakeRun, *, model_name: str, data_root: Path, experiments: list[str], fingerprints: dict[str, str]
) -> list[Skipped]:
    """The model's legacy store, staged into the embeddings table (its earlier legacy rows replaced); returns the rows
    and files left out."""
    txn, lake, record = run.txn, run.lake, run.record
    skipped, rows, styles = [], 0, {}
    dim = model_latent_dim(data_root, model_name, lake)
    for experiment, table, style, bad in read_latent_store(
        data_root, model_name, experiments, expected_dim=dim, skip_bad_files=True
    ):
        skipped += bad
        if table is None:
            continue
        styles[experiment] = style
        _note_zero_norm(table, experiment, record)
        n = table.num_rows
        table = table.append_column(
            "image_fingerprint", string_array([fingerprints.get(s) for s in table["snip_id"].to_pylist()])
        )
        where = f"embeddings/model_name={model_name}/experiment_date={experiment}"
        existing = txn.current("embeddings", {"model_name": model_name, "experiment_date": experiment})
        if existing is not None:
            # The store is re-read in full: drop old legacy rows, keep onnx rows the store does not cover.
            existing = existing.filter(pc.not_equal(existing["source"], "legacy_csv"))
        provenance = Provenance(model_name=model_name, source="legacy_csv", run_id=run.run_id)
        new = embedding_rows(table, provenance, dim=partition_dim(table))
        kept = _store_rows_already_embedded(existing, new)
        if kept:  # a store file build06 generated from these rows: keep their provenance
            new = new.filter(pc.invert(pc.is_in(new["snip_id"], value_set=pa.array(sorted(kept), pa.string()))))
        merged = merge(existing, new, new["snip_id"], where=where)
        txn.stage(
            "embeddings",
            {"model_name": model_name, "experiment_date": experiment},
            merged,
            expected_rows=merged.num_rows,
        )
        rows += n
    record.count("latent_rows", rows)
    record.set("latent_store", {"model_name": model_name, "experiments": sorted(styles), "z_naming": styles})
    return skipped


def _note_zero_norm(table: pa.Table, experiment: str, record: RunRecord) -> None:
    """All-zero z_mu rows of a store file are kept (they are the lab's) and said: the run record's `zero_norm`, a
    warning naming some. Cosine similarity is undefined for them; `neighbours` leaves them out."""
    zs = flat_z_mu(table.column_names)
    zero = polars_frame(table.select(["snip_id", *zs])).filter(pl.all_horizontal([pl.col(z) == 0 for z in zs]))
    if zero.height:
        record.set("zero_norm", {**record.data.get("zero_norm", {}), experiment: zero.height})
        ids = zero["snip_id"].to_list()
        log.warning(
            "latent store of %s: %d row(s) with an all-zero z_mu, kept (no cosine similarity with them: `morphlake "
            "neighbours` leaves them out): %s",
            experiment,
            len(ids),
            some(ids),
        )


def _store_rows_already_embedded(existing: pa.Table | None, store: pa.Table) -> set[str]:
    """snip_ids whose store row repeats the lake's ONNX row value for value (every z column the store
    holds, as float32): `build06 --generate-missing-latents` wrote the store file from those rows."""
    if existing is None or existing.num_rows == 0:
        return set()
    zs = [c for c in z_columns_in(store.column_names) if store[c].null_count < store.num_rows]
    if not zs or any(c not in existing.column_names for c in zs):
        return set()
    old = polars_frame(existing.select(["snip_id", *zs]))
    new = polars_frame(store.select(["snip_id", *zs]))
    same = new.join(old, on="snip_id", suffix="__lake").filter(
        pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}__lake")) for c in zs])
    )
    return set(same["snip_id"].to_list())


def ledger_fingerprints(lake: Lake, experiments: list[str]) -> dict[str, str]:
    """snip_id -> image fingerprint from the lake's ledger (for a run that does not scan the snips)."""
    found: dict[str, str] = {}
    for exp in experiments:
        path = lake.partition_file("snips", experiment_date=exp)
        if path.is_file():
            ledger = read_part(path, ["snip_id", "fingerprint"])
            found.update(zip(ledger["snip_id"].to_pylist(), ledger["fingerprint"].to_pylist()))
    return found


def _scan_ledger(
    txn: Transaction,
    lake: Lake,
    data_root: Path,
    *,
    exps: list[str],
    known: dict[str, set[str]],
    record: RunRecord,
    retire_missing: bool,
) -> tuple[dict[str, str], list[Skipped]]:
    fingerprints: dict[str, str]
    skipped, fingerprints, snips, retired = [], {}, 0, {}
    every = set().union(*known.values())
    gone: dict[str, set[str]] = {}  # experiment -> its ledger's snips whose image is gone from its folder
    found: set[str] = set()  # snips with a readable image in some folder
    for exp in exps:
        if not snip_dir(data_root, exp).is_dir():
            skipped.append(
                Skipped(
                    "snips", exp, str(snip_dir(data_root, exp)), reason="experiment has df02 rows but no snip folder"
                )
            )
            continue
        ledger, bad = scan_snips(data_root, exp, every, previous=previous_ledger(lake, exp))
        skipped += bad
        usable = available(ledger)
        readable = set(usable["snip_id"].to_pylist())
        found |= readable
        gone[exp] = set(ledger["snip_id"].to_pylist()) - readable
        _note_misplaced(exp, readable - known[exp])
        if retire_missing:  # every df02 snip of the experiment without a readable image in the ledger
            ledger, retired[exp] = usable, known[exp] - readable
        snips += ledger.num_rows
        fingerprints.update(zip(ledger["snip_id"].to_pylist(), ledger["fingerprint"].to_pylist()))
        txn.stage("snips", {"experiment_date": exp}, ledger, expected_rows=ledger.num_rows)
    for exp, ids in gone.items():
        if ids & found:  # moved to another experiment's folder: there now, so no row of it is kept here
            keys = {"experiment_date": exp}
            staged = txn.current("snips", keys)
            assert staged is not None  # staged in the loop above (gone has only experiments it staged)
            kept = staged.filter(pc.invert(pc.is_in(staged["snip_id"], pa.array(sorted(ids & found)))))
            txn.stage("snips", keys, kept, expected_rows=kept.num_rows)
            snips -= staged.num_rows - kept.num_rows
        if ids - found:
            _note_gone(exp, sorted(ids - found), record)
    record.count("snips", snips)
    _retire_embeddings(txn, lake, retired, record=record)
    return fingerprints, skipped


def _note_gone(exp: str, ids: list[str], record: RunRecord) -> None:
    record.set("images_gone", {**record.data.get("images_gone", {}), exp: ids})
    log.warning(
        "%s: %d snip image(s) in the ledger are gone or unreadable (kept in the ledger, marked in image_status; "
        "their embeddings stay, and `morphlake build` warns about them): %s. Restore the files, or run "
        "`morphlake ingest --retire-missing` to drop them and their ONNX embeddings",
        exp,
        len(ids),
        some(ids),
    )


def _note_misplaced(exp: str, ids: set[str]) -> None:
    if ids:
        log.warning(
            "%d snip image(s) in the folder of experiment %s belong to another experiment's df02 rows (they are "
            "ledgered and embedded under %s, which df03 does not join them on): %s; move them to their "
            "experiment's folder",
            len(ids),
            exp,
            exp,
            some(sorted(ids)),
        )


def _retire_embeddings(txn: Transaction, lake: Lake, retired: dict[str, set[str]], *, record: RunRecord) -> None:
    """`ingest --retire-missing`: the ONNX embeddings (of every model) of df02 snips without a readable image in the
    ledger leave the lake, as their ledger rows do. Legacy-store rows stay: the store is the lab's, and the next
    ingest reads it again."""
    removed: dict[str, dict[str, list[str]]] = {}  # model -> experiment -> snip ids
    for model in lake.partition_values("embeddings", "model_name"):
        for exp, ids in retired.items():
            keys = {"model_name": model, "experiment_date": exp}
            existing = txn.current("embeddings", keys)
            if existing is None or not ids:
                continue
            gone = pc.and_(pc.equal(existing["source"], "onnx"), pc.is_in(existing["snip_id"], pa.array(sorted(ids))))
            if not pc.any(gone).as_py():
                continue
            kept = existing.filter(pc.invert(gone))
            txn.stage("embeddings", keys, kept, expected_rows=kept.num_rows)
            removed.setdefault(model, {})[exp] = existing.filter(gone)["snip_id"].to_pylist()
    if retired:
        record.set("retired_missing", removed)
        count = sum(len(ids) for exps in removed.values() for ids in exps.values())
        log.info("--retire-missing: %d ONNX embedding(s) of snips without a readable image removed", count)


def _retire_gone_experiments(txn: Transaction, lake: Lake, exps: list[str], *, record: RunRecord) -> None:
    """df02 is a whole table: experiments no longer in it leave raw/df02 (and so df03); the other tables
    keep theirs (embeddings are expensive to remake), and `status` lists them as not in df02."""
    gone = [e for e in lake.partition_values("df02") if e not in exps]
    for exp in gone:
        txn.retire("df02", {"experiment_date": exp})
    if gone:
        log.info("experiment(s) no longer in df02, removed from raw/df02: %s", ", ".join(gone))
        record.set("df02_removed_experiments", gone)


def _stage_df02(run: LakeRun, root: Path, *, experiments: list[str] | None) -> pa.Table:
    """df02 read and staged, one partition per experiment; the run record lists the experiments."""
    with run.record.timed("read_df02"):
        df02, skipped = read_df02(DataRoot.at(root).df02, experiments)
    run.skip(skipped)
    exps = sorted(set(df02["experiment_date"].to_pylist()))
    run.record.set("experiments", exps)
    run.record.count("df02_rows", df02.num_rows)
    for exp in exps:
        part = df02.filter(pc.equal(df02["experiment_date"], exp))
        run.txn.stage("df02", {"experiment_date": exp}, part, expected_rows=part.num_rows)
    return df02


def _snips_by_experiment(df02: pa.Table) -> dict[str, set[str]]:
    """experiment -> its df02 snip ids."""
    known: dict[str, set[str]] = {}
    for snip, exp in zip(df02["snip_id"].to_pylist(), df02["experiment_date"].to_pylist()):
        known.setdefault(exp, set()).add(snip)
    return known


def _stage_train(run: LakeRun, root: Path) -> None:
    """Every training set's metadata, staged; a whole file that cannot be used is skipped in partial mode."""
    with run.record.timed("read_train"):
        for name, path in DataRoot.at(root).train_sets().items():
            try:
                table, bad = read_train(path, name)
            except InputError as exc:
                run.skip([Skipped("train", name, str(path), reason=str(exc).replace("\n  hint:", ";"))])
                continue
            run.skip(bad)
            run.txn.stage("train", {"train_name": name}, table, expected_rows=table.num_rows)
            run.record.count(f"train_rows:{name}", table.num_rows)


def _ledger_or_fingerprints(
    run: LakeRun, dirs: DataRoot, *, known: dict[str, set[str]], scan_images: bool, retire_missing: bool
) -> dict[str, str]:
    """The snip folders scanned into the ledger, or (metadata only) the ledger left as it is; either way the
    fingerprints of the df02 snips (snip_id -> fingerprint)."""
    exps = sorted(known)
    snips_mounted = dirs.snips.is_dir()
    if scan_images and not snips_mounted and not dirs.latent_embeddings.is_dir():
        raise MorphlakeError(
            f"the data root {dirs.data} has neither {SNIP_SUBDIR}/ nor analysis/latent_embeddings/",
            "check --data-root (or MORPHSEQ_DATA_ROOT); to ingest df02 and the training "
            "metadata alone, pass --no-snips",
        )
    if scan_images and snips_mounted:
        with run.record.timed("scan_snips"):
            fingerprints, bad = _scan_ledger(
                run.txn, run.lake, dirs.data, exps=exps, known=known, record=run.record, retire_missing=retire_missing
            )
        run.skip(bad)
        return fingerprints
    why = "asked not to scan images" if not scan_images else f"no snip folder {dirs.snips}"
    (log.info if not scan_images else log.warning)("metadata only (%s): the snip ledger is left as it is", why)
    run.record.set("snips", f"not scanned: {why}")
    return ledger_fingerprints(run.lake, exps)


def run_ingest(
    lake: Lake,
    root: Path,
    data_root: Path,
    *,
    model_name: str,
    experiments: list[str] | None = None,
    allow_partial: bool = False,
    scan_images: bool = True,
    retire_missing: bool = False,
) -> RunResult:
    """Read every legacy input and publish the lake's raw tables and legacy embeddings.

    scan_images=False (or no snip folder under the data root at all, e.g. not mounted) ingests the metadata
    alone: df02, training metadata and the latent store; the ledger stays as it is.
    A snip whose image is gone since the last ingest stays in the ledger marked as such (its embeddings stay);
    retire_missing drops it from the ledger and its ONNX embeddings from the lake.
    """
    root, data_root = Path(root).absolute(), Path(data_root).absolute()
    params = {
        "root": str(root),
        "data_root": str(data_root),
        "model_name": model_name,
        "experiments": experiments,
        "allow_partial": allow_partial,
        "scan_images": scan_images,
        "retire_missing": retire_missing,
    }
    with lake_run(lake, "ingest", params, allow_partial=allow_partial) as run:
        known = _snips_by_experiment(_stage_df02(run, root, experiments=experiments))
        _stage_train(run, root)
        if not experiments:
            _retire_gone_experiments(run.txn, lake, sorted(known), record=run.record)
        fingerprints = _ledger_or_fingerprints(
            run, DataRoot.at(root, data_root), known=known, scan_images=scan_images, retire_missing=retire_missing
        )
        with run.record.timed("read_latents"):
            latents = _stage_latents(
                run, model_name=model_name, data_root=data_root, experiments=sorted(known), fingerprints=fingerprints
            )
        run.skip(latents)
    return run.result
