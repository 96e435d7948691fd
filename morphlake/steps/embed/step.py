"""`morphlake embed`: ledger snips without a current embedding -> encoder -> embeddings partitions."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from morphlake.common.progress import step_progress
from morphlake.embed import EmbeddedBatch, Encoder
from morphlake.errors import MorphlakeError
from morphlake.ingest.errors import Skipped
from morphlake.ingest.naming import check_segment
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import Lake
from morphlake.lake.runs import RunRecord
from morphlake.steps.embed.decode_check import CHECK_SNIPS
from morphlake.steps.embed.derived_encoder import VERIFY_SNIPS, LoadedEncoder, load_encoder, verify
from morphlake.steps.embed.engine import embed_engine, refuse_gpu_decode_off_gpu
from morphlake.steps.embed.options import EmbedOptions
from morphlake.steps.embed.plan import plan_embedding, snip_refs
from morphlake.steps.embed.writer import PartitionWriter
from morphlake.steps.lifecycle import RunResult, lake_run

log = logging.getLogger("morphlake")


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
        refuse_gpu_decode_off_gpu(loaded.run, options)
        value = options.value(loaded.run.info.precision)
        describe_encoder(run.record, loaded, options, value=value)
        with run.record.timed("plan"):
            plans = plan_embedding(lake, loaded.run.info, experiments, value=value)
        total = sum(t.num_rows for t in plans.values())
        run.record.count("to_embed", total)
        run.record.set("experiments_to_embed", {e: t.num_rows for e, t in plans.items()})
        log.info("%d snip(s) to embed in %d experiment(s)", total, len(plans))
        with embed_engine(run.record, loaded.run, options, total=total) as engine:
            if options.checked_decode and total:
                with run.record.timed("check_decode"):
                    todo = list(itertools.islice(snip_refs(plans), CHECK_SNIPS))
                    run.record.data["embed_options"]["decode_check"] = engine.check_decode(todo)
            if loaded.derived and total:
                with run.record.timed("verify_copy"):
                    todo = list(itertools.islice(snip_refs(plans), 4 * VERIFY_SNIPS))
                    run.record.data["embed_options"]["verification"] = verify(
                        loaded,
                        todo,
                        lake=lake,
                        min_cosine=options.min_cosine,
                        reduced=options.reduced_decode,
                        workers=options.workers,
                    )
            writer = PartitionWriter(
                run.txn,
                lake,
                loaded.run,
                run_id=run.run_id,
                expected={e: t.num_rows for e, t in plans.items()},
                options=value,
            )
            batches = engine.batches(plans)
            run.skip(
                embed_batches(run.record, loaded.run, batches, writer=writer, total=total, allow_partial=allow_partial)
            )
    return run.result


def describe_encoder(record: RunRecord, loaded: LoadedEncoder, options: EmbedOptions, *, value: str | None) -> None:
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
            "embed options %s: not bit-identical to the legacy path (%s)",
            value,
            "the run checks the GPU decode against the legacy one first"
            if options.decode == "gpu"
            else "benchmarks/embed.py reports the drift",
        )
    record.set(
        "provider",
        {"requested": options.device, "used": encoder.provider, "session_providers": encoder.session.get_providers()},
    )


def embed_batches(
    record: RunRecord,
    encoder: Encoder,
    batches: Iterable[EmbeddedBatch],
    *,
    writer: PartitionWriter,
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
                skipped.append(Skipped("snips", ref.snip_id, ref.path, reason=reason))
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
