"""`morphlake embed`: ledger snips without a current embedding -> encoder -> embeddings partitions."""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from morphlake.common.progress import step_progress
from morphlake.common.zcolumns import z_columns
from morphlake.embed import EmbeddedBatch, Encoder, SnipRef, embed_snips
from morphlake.embed.gpu_decode import GpuDecoder
from morphlake.embed.model import CUDA
from morphlake.embed.runner import default_workers
from morphlake.errors import MorphlakeError
from morphlake.ingest.errors import Skipped
from morphlake.ingest.naming import check_segment
from morphlake.lake import currency
from morphlake.lake.arrays import numeric_array, string_array
from morphlake.lake.embeddings_table import conform, merge, read_partition
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import Lake, read_part
from morphlake.lake.publish import Transaction
from morphlake.lake.runs import RunRecord
from morphlake.lake.snip_ledger import available
from morphlake.steps.decode_check import CHECK_SNIPS, check_decode
from morphlake.steps.derived_encoder import VERIFY_SNIPS, LoadedEncoder, load_encoder, verify
from morphlake.steps.embed_engine import Engine
from morphlake.steps.embed_options import EmbedOptions, refuse_gpu_decode_without_gpu
from morphlake.steps.lifecycle import RunResult, lake_run

log = logging.getLogger("morphlake")


def ledger_experiments(lake: Lake, experiments: list[str] | None) -> list[str]:
    found = lake.partition_values("snips")
    if not found:
        raise MorphlakeError(f"the lake {lake.root} has no snip ledger", "run `morphlake ingest` first")
    if experiments:
        unknown = [e for e in experiments if e not in found]
        if unknown:
            raise MorphlakeError(
                f"experiment(s) not in the snip ledger: {', '.join(unknown)}", f"choose from: {', '.join(found)}"
            )
        return [e for e in found if e in experiments]
    return found


def plan_experiment(lake: Lake, experiment: str, model_name: str, sha256: str, options: str | None = None) -> pa.Table:
    """Ledger rows of one experiment that need embedding (of those whose image can be read). Legacy-store rows
    count as current, and ONNX rows of the same model file, embed options and image.

    Only the key columns of the existing partition are read here; the full partition is read again
    when the new rows are merged in, one experiment at a time (memory stays flat as the lake grows).
    """
    ledger = available(read_part(lake.partition_file("snips", experiment_date=experiment)))  # not the vanished
    path = lake.partition_file("embeddings", model_name=model_name, experiment_date=experiment)
    if not path.is_file():
        return ledger
    with pq.ParquetFile(path) as part:
        present = set(part.schema_arrow.names)  # partitions written before embed_options existed lack it
        existing = part.read(columns=[k for k in currency.KEYS if k in present])
    snips = ledger["snip_id"].to_pylist()
    current = currency.current_snips(
        existing, dict(zip(snips, ledger["fingerprint"].to_pylist())), sha256=sha256, options=options
    )
    todo = [i for i, snip in enumerate(snips) if snip not in current]
    return ledger.take(numeric_array(np.array(todo, np.int64)))


class PartitionWriter:
    """Collects embedded rows per experiment and stages each partition once all its snips are in.

    The main thread calls `add` between batches while the workers decode, so it only appends the batch's ids
    and rows; each partition's table is built once, at its flush, column by column from numpy buffers (no
    `pa.array`: see morphlake.lake.arrays)."""

    def __init__(
        self,
        txn: Transaction,
        lake: Lake,
        encoder: Encoder,
        run_id: str,
        expected: dict[str, int],
        options: str | None = None,
    ):
        self.txn, self.lake, self.info, self.run_id, self.options = txn, lake, encoder.info, run_id, options
        self.remaining = dict(expected)
        self.parts: dict[str, list[tuple[list[str], list[str], np.ndarray]]] = defaultdict(list)
        self.rows = 0  # rows staged
        self.pending = 0  # rows collected, not yet staged

    def add(self, batch: EmbeddedBatch) -> None:
        for ref, _ in batch.failures:
            self._done(ref.experiment_date, 1)
        if not batch.refs:
            return
        z = np.concatenate([batch.z_mu, batch.z_logvar], axis=1)
        start = 0
        for exp, refs in itertools.groupby(batch.refs, key=lambda r: r.experiment_date):
            ids = [r.snip_id for r in refs]
            stop = start + len(ids)
            self.parts[exp].append((ids, batch.fingerprints[start:stop], z[start:stop]))
            self.pending += len(ids)
            start = stop
            self._done(exp, len(ids))

    def _table(self, exp: str, parts: list[tuple[list[str], list[str], np.ndarray]]) -> pa.Table:
        info, dim = self.info, self.info.latent_dim
        n = sum(len(ids) for ids, _, _ in parts)
        constants = {
            "experiment_date": exp,
            "model_name": info.model_name,
            "source": "onnx",
            "encoder_weights": info.weights,
            "model_sha256": info.source_sha256,
            "embed_options": self.options,
            "run_id": self.run_id,
        }
        columns = {
            "snip_id": string_array([s for ids, _, _ in parts for s in ids]),
            "image_fingerprint": string_array([f for _, fps, _ in parts for f in fps]),
            **{name: string_array([value] * n) for name, value in constants.items()},
        }
        z = np.asfortranarray(np.concatenate([rows for _, _, rows in parts]), dtype=np.float32)
        for j, name in enumerate(z_columns(dim)):
            columns[name] = numeric_array(z[:, j])
        return conform(pa.Table.from_arrays(list(columns.values()), names=list(columns)), dim)

    def _done(self, exp: str, count: int) -> None:
        self.remaining[exp] -= count
        if self.remaining[exp] == 0:
            self.flush(exp)

    def flush(self, exp: str) -> None:
        parts = self.parts.pop(exp, [])
        if not parts:
            return
        new = self._table(exp, parts)
        where = f"embeddings/model_name={self.info.model_name}/experiment_date={exp}"
        merged = merge(read_partition(self.lake, self.info.model_name, exp), new, new["snip_id"], where)
        self.txn.stage(
            "embeddings",
            {"model_name": self.info.model_name, "experiment_date": exp},
            merged,
            expected_rows=merged.num_rows,
        )
        self.rows += new.num_rows
        self.pending -= new.num_rows


def _refs(plans: dict[str, pa.Table]) -> Iterator[SnipRef]:
    for exp, todo in plans.items():
        for snip, path in zip(todo["snip_id"].to_pylist(), todo["path"].to_pylist()):
            yield SnipRef(snip, exp, path)


def run_embed(
    lake: Lake,
    model: Path,
    *,
    options: EmbedOptions = EmbedOptions(),
    experiments: list[str] | None = None,
    allow_partial: bool = False,
) -> RunResult:
    """Embed every ledger snip without a current embedding for the model, and publish the partitions:
    load the encoder, plan, check a --precision copy, then read -> encode -> write batch by batch."""
    params = {
        "model": str(Path(model).absolute()),
        **options.to_dict(),
        "experiments": experiments,
        "allow_partial": allow_partial,
    }
    with lake_run(lake, "embed", params, allow_partial=allow_partial) as run:
        with run.record.timed("load_model"):
            loaded = load_encoder(
                lake, model, device=options.driver_device, threads=options.threads, precision=options.precision
            )
        value = options.value(loaded.run.info.precision)
        describe_encoder(run.record, loaded, options, value)
        refuse_gpu_decode_off_gpu(loaded.run, options)
        with run.record.timed("plan"):
            plans = plan_embedding(lake, loaded.run.info, experiments, value)
        total = sum(t.num_rows for t in plans.values())
        run.record.count("to_embed", total)
        run.record.set("experiments_to_embed", {e: t.num_rows for e, t in plans.items()})
        log.info("%d snip(s) to embed in %d experiment(s)", total, len(plans))
        with embed_engine(run.record, loaded.run, options, total) as engine:
            if options.checked_decode and total:
                with run.record.timed("check_decode"):
                    todo = list(itertools.islice(_refs(plans), CHECK_SNIPS))
                    run.record.data["embed_options"]["decode_check"] = engine.check_decode(todo)
            if loaded.derived and total:
                with run.record.timed("verify_copy"):
                    todo = list(itertools.islice(_refs(plans), 4 * VERIFY_SNIPS))
                    run.record.data["embed_options"]["verification"] = verify(
                        loaded,
                        todo,
                        lake=lake,
                        min_cosine=options.min_cosine,
                        reduced=options.reduced_decode,
                        workers=options.workers,
                    )
            writer = PartitionWriter(
                run.txn, lake, loaded.run, run.run_id, {e: t.num_rows for e, t in plans.items()}, value
            )
            batches = engine.batches(plans)
            run.skip(embed_batches(run.record, loaded.run, batches, writer, total=total, allow_partial=allow_partial))
    return run.result


def describe_encoder(record: RunRecord, loaded: LoadedEncoder, options: EmbedOptions, value: str | None) -> None:
    """Say which encoder, weights, options and provider run, in the log and the run record."""
    encoder, info = loaded.run, loaded.run.info
    check_segment("model name", info.model_name)
    log.info(
        "encoder %s (%s weights, sha256 %s…, %s) on %s",
        info.model_name,
        info.weights,
        info.source_sha256[:12],
        info.precision,
        encoder.provider,
    )
    if info.weights == "demo":
        log.warning("this encoder has DEMO weights (seeded random); its embeddings are for trying morphlake only")
    record.set(
        "encoder",
        {
            "model_name": info.model_name,
            "sha256": info.source_sha256,
            "weights": info.weights,
            "latent_dim": info.latent_dim,
            "path": str(loaded.given.path),
            "weights_origin": info.metadata.get("weights_origin"),
        },
    )
    record.set(
        "embed_options",
        {
            "decode": options.decode,
            "precision": info.precision,
            "value": value,
            "encoder_run": {"path": str(info.path), "sha256": info.sha256},
        },
    )
    if value:
        log.info(
            "embed options %s: not bit-identical to the legacy path (benchmarks/embed.py reports the drift)", value
        )
    record.set(
        "provider",
        {"requested": options.device, "used": encoder.provider, "session_providers": encoder.session.get_providers()},
    )


def refuse_gpu_decode_off_gpu(encoder: Encoder, options: EmbedOptions) -> None:
    """--decode gpu where the encoder did not open on a GPU (--device auto on a host without one) is refused before
    the run plans anything (with --engine ray, where the cluster has no GPU: embed_ray)."""
    if options.engine == "local" and encoder.provider != CUDA:
        refuse_gpu_decode_without_gpu(
            options.decode, why=f"--device {options.device} opened the encoder on {encoder.provider}"
        )


def gpu_decoder_for(encoder: Encoder, options: EmbedOptions, *, slots: int) -> GpuDecoder | None:
    """The GPU decoder of --decode gpu (None for the other decodes), on the encoder's device."""
    if options.decode != "gpu":
        return None
    return GpuDecoder(slots=slots, device="cuda" if encoder.provider == CUDA else "cpu")


@contextmanager
def embed_engine(record: RunRecord, encoder: Encoder, options: EmbedOptions, total: int) -> Iterator[Engine]:
    """`with embed_engine(...) as engine:` then `engine.batches(plans)` yields EmbeddedBatch: embed_snips in this
    process (local), or Ray Data on a cluster (ray); the run record's `engine` says which ran where."""
    if options.engine == "ray":
        from morphlake.steps.embed_ray import ray_engine

        with ray_engine(record, encoder, options, total) as engine:
            yield engine
        return
    gpu = not encoder.concurrent  # on CUDA the threads only decode, for the one thread that feeds the GPU
    workers, batch_size = options.workers or default_workers(feeding_gpu=gpu), options.batch_for(gpu=gpu)
    decoder = gpu_decoder_for(encoder, options, slots=batch_size)
    described: dict[str, object] = {"name": "local", "nodes": 1, "workers": workers, "batch_size": batch_size}
    if decoder is not None:
        described["jpeg_decode"] = {"by": "nvImageCodec", "on": decoder.device, "resize_on": decoder.provider}
    record.set("engine", described)
    log.info("%d decode thread(s), batches of %d on %s", workers, batch_size, encoder.provider)
    if decoder is not None:
        log.info("grey JPEG snips decoded by nvImageCodec on %s, resized on %s", decoder.device, decoder.provider)

    def local_batches(plans: dict[str, pa.Table]) -> Iterator[EmbeddedBatch]:
        refs = _refs(plans)
        return embed_snips(refs, encoder, batch_size, workers, reduced=options.reduced_decode, gpu_decoder=decoder)

    def local_check(todo: list[SnipRef]) -> dict:
        return check_decode(
            encoder,
            todo,
            decode=options.decode,
            batch_size=batch_size,
            min_cosine=options.min_cosine,
            gpu_decoder=decoder,
        )

    yield Engine(local_batches, local_check)


def plan_embedding(lake: Lake, info, experiments: list[str] | None, value: str | None) -> dict[str, pa.Table]:
    """Experiment -> its ledger rows that need embedding (experiments with none left out)."""
    plans = {}
    for exp in ledger_experiments(lake, experiments):
        todo = plan_experiment(lake, exp, info.model_name, info.source_sha256, value)
        if todo.num_rows:
            plans[exp] = todo
    return plans


def embed_batches(
    record: RunRecord,
    encoder: Encoder,
    batches: Iterable[EmbeddedBatch],
    writer: PartitionWriter,
    *,
    total: int,
    allow_partial: bool,
) -> list[Skipped]:
    """Embedded batches (from either engine) -> write, batch by batch, with per-batch timings and progress
    (common.progress); returns the snips skipped (a strict run fails on the first)."""
    skipped: list[Skipped] = []
    timing = {"decode_cpu_s": 0.0, "wait_s": 0.0, "infer_s": 0.0, "write_s": 0.0, "batches": 0}
    start = time.perf_counter()
    with step_progress("embed", total, unit="snips") as progress:
        for batch in batches:
            for ref, reason in batch.failures:
                if not allow_partial:
                    raise MorphlakeError(
                        f"cannot embed snip {ref.snip_id} ({ref.path}): {reason}",
                        "fix or remove the file and re-run `morphlake ingest`, or pass --allow-partial to skip it",
                    )
                skipped.append(Skipped("snips", ref.snip_id, ref.path, reason))
            t0 = time.perf_counter()
            writer.add(batch)
            timing["write_s"] += time.perf_counter() - t0
            timing["decode_cpu_s"] += batch.decode_s
            timing["wait_s"] += batch.wait_s
            timing["infer_s"] += batch.infer_s
            timing["batches"] += 1
            crash_point("embed-batch")
            progress.update(writer.rows + writer.pending + len(skipped))
    elapsed = time.perf_counter() - start
    record.set("embed_timings_s", {k: round(v, 4) if isinstance(v, float) else v for k, v in timing.items()})
    record.count("embedded", writer.rows)
    record.count("images_per_s", round(writer.rows / elapsed, 1) if elapsed > 0 and writer.rows else 0)
    log.info(
        "embedded %d snip(s) in %.2fs on %s (decode %.2fs cpu, infer %.2fs, waited %.2fs for input)",
        writer.rows,
        elapsed,
        encoder.provider,
        timing["decode_cpu_s"],
        timing["infer_s"],
        timing["wait_s"],
    )
    return skipped
