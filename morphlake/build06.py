"""`morphlake build06`: the legacy one-shot step — ingest, embed what is missing, dbt, legacy CSV exports."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import duckdb

from embed.model import Encoder
from ingest.errors import Skipped
from morphlake import __version__
from morphlake.build06_plan import Build06Options, Plan, describe_plan, make_plan
from morphlake.embed_step import embed
from morphlake.errors import MorphlakeError, PartialResult
from morphlake.faults import crash_point
from morphlake.ingest_step import ingest, train_files
from morphlake.layout import Lake
from morphlake.legacy_outputs import (check_outputs_free, df03_sql, git_commit, non_finite_count, train_sql,
                                      write_csv_atomic)
from morphlake.lock import LakeLock
from morphlake.runs import RunRecord, write_json_atomic
from morphlake.sql_build import build
from morphlake.step import EXIT_COMPLETE, EXIT_PARTIAL

log = logging.getLogger("morphlake")
COVERAGE_WARNING = 0.95
GENERATE_HINT = "pass --generate-missing-latents to embed them, or --allow-partial to write what exists"


def missing_latents(plan: Plan) -> list[Skipped]:
    """One item per experiment with no store file, and per usable snip the store lacks elsewhere."""
    items = [Skipped("latents", exp, "legacy latent store", "experiment has no latents in the legacy store")
             for exp in plan.experiments_without_latents]
    for exp, snips in plan.missing.items():
        if exp in plan.latent_files:
            items += [Skipped("latents", s, str(plan.latent_files[exp]), "no latents in the legacy store") for s in snips]
    return items


def fail_on_missing(plan: Plan) -> None:
    without = plan.experiments_without_latents
    partial = {e: len(s) for e, s in plan.missing.items() if e in plan.latent_files}
    parts = []
    if without:
        parts.append(f"experiment(s) with no latents: {', '.join(without)}")
    if partial:
        parts.append("snips missing from the store: " + ", ".join(f"{e} ({n})" for e, n in partial.items()))
    raise MorphlakeError(f"{plan.missing_count} usable df02 row(s) have no legacy latents — " + "; ".join(parts),
                         GENERATE_HINT)


def resolve_encoder(plan: Plan, opts: Build06Options) -> Path:
    """encoder.onnx from the model folder, or one exported on the fly into <lake>/models/<model>/."""
    source = plan.encoder
    if source.kind == "none":
        raise MorphlakeError(
            f"--generate-missing-latents needs an encoder for {opts.model_name}: {source.detail}",
            f"export one with `morphlake export-onnx --state-dict <model folder>/encoder_reformatted.pt "
            f"-o {opts.data_root / 'models' / 'legacy' / opts.model_name / 'encoder.onnx'}` "
            "(needs: pip install 'morphlake[export]')")
    path = source.path
    if source.kind == "state_dict":
        from embed.export import export_onnx
        from embed.model import file_sha256

        out = opts.lake.root / "models" / opts.model_name / f"encoder-{file_sha256(path)[:16]}.onnx"
        if not out.is_file():
            log.info("exporting %s to %s", path, out)
            out.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(path, path.parent / "model_config.json", out, opts.model_name)
        path = out
    name = Encoder(path, device="cpu").info.model_name
    if name != opts.model_name:
        raise MorphlakeError(f"{path} is an encoder for model {name!r}, not {opts.model_name!r}",
                             "use the encoder of this model, or re-export it with --model-name")
    return path


def coverage_rows(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> list[tuple]:
    return con.sql("select experiment_date, usable_rows, embedded_rows, legacy_rows, onnx_rows from df03_coverage "
                   "where list_contains(?, experiment_date) order by experiment_date", params=[experiments]).fetchall()


def still_missing(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> list[Skipped]:
    rows = con.sql("""
        select d.experiment_date, d.snip_id from stg_df02 d
        left join df03 using (snip_id)
        where d.use_embryo_flag and df03.snip_id is null and list_contains(?, d.experiment_date)
        order by 1, 2""", params=[experiments]).fetchall()
    return [Skipped("df03", snip, exp, "usable df02 row without an embedding") for exp, snip in rows]


def run_build06(opts: Build06Options, echo: Callable[[str], None]) -> int:
    """Run the legacy step; returns the exit code (0 complete, 2 partial); raises on failure."""
    plan = make_plan(opts)
    if opts.dry_run:
        echo(describe_plan(plan, opts))
        return EXIT_COMPLETE
    check_outputs_free(plan.writes, opts.overwrite)
    generate = opts.generate_missing_latents and plan.missing_count > 0
    if plan.missing_count and not opts.generate_missing_latents and not opts.allow_partial:
        fail_on_missing(plan)
    record = RunRecord("build06", {k: str(v.root if isinstance(v, Lake) else v) if isinstance(v, (Path, Lake)) else v
                                   for k, v in vars(opts).items()})
    skipped: list[Skipped] = [] if opts.generate_missing_latents else missing_latents(plan)
    with LakeLock(opts.lake.lock_file, "build06", record.run_id):
        try:
            encoder = resolve_encoder(plan, opts) if generate else None
            with record.timed("ingest"):
                step = ingest(opts.lake, opts.root, opts.data_root, opts.model_name, opts.experiments, opts.allow_partial)
            skipped += step.skipped
            record.set("ingest_run", step.run_id)
            echo(f"ingest: {step.record['counts'].get('df02_rows')} df02 rows, {step.record['counts'].get('latent_rows')} "
                 f"legacy latent rows")
            if generate:
                with record.timed("embed"):
                    step = embed(opts.lake, encoder, experiments=sorted(plan.missing), allow_partial=opts.allow_partial)
                skipped += step.skipped
                record.set("embed_run", step.run_id)
                record.set("encoder", step.record.get("encoder"))
                echo(f"embed: {step.record['counts'].get('embedded', 0)} snip(s) embedded with {encoder} "
                     f"on {step.record['provider']['used']}")
            with record.timed("dbt"):
                built = build(opts.lake, opts.model_name, opts.z_schema, coverage_severity="warn", quiet=True)
            record.set("build_run", built.run_id)
            if built.exit_code != EXIT_COMPLETE:
                details = "; ".join(f"{f['node']}: {f['message']}" for f in built.failures)
                raise MorphlakeError(f"dbt build failed: {details or built.record.get('error')}",
                                     f"see {opts.lake.runs_dir / (built.run_id + '.json')}")
            with record.timed("exports"), duckdb.connect(str(opts.lake.warehouse), read_only=True) as con:
                outputs, coverage = write_outputs(con, plan, opts, record, echo, skipped)
        except BaseException as exc:
            record.set("problems", [s.to_dict() for s in getattr(exc, "skipped", [])] or None)
            record.finish(opts.lake.runs_dir, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        record.set("outputs", outputs)
        record.set("coverage", coverage)
        outcome = "partial" if skipped else "complete"
        path = record.finish(opts.lake.runs_dir, outcome, skipped=skipped)
    echo(f"build06: {outcome}; run record {path}")
    if skipped:
        echo(f"  {len(skipped)} item(s) skipped, listed in {record.data['partial_manifest']}")
    return EXIT_PARTIAL if skipped else EXIT_COMPLETE


def write_outputs(con, plan: Plan, opts: Build06Options, record: RunRecord, echo, skipped: list[Skipped]):
    """Coverage and finiteness checks, then the legacy CSVs and the sidecar; returns (outputs, coverage)."""
    rows = coverage_rows(con, plan.experiments)
    usable = sum(r[1] for r in rows)
    embedded = sum(r[2] for r in rows)
    coverage = {"overall": round(embedded / usable, 6) if usable else None,
                "per_experiment": {r[0]: {"usable": r[1], "embedded": r[2], "legacy": r[3], "onnx": r[4],
                                          "coverage": round(r[2] / r[1], 6) if r[1] else None} for r in rows}}
    echo(f"coverage: {embedded}/{usable} usable rows ({embedded / usable:.1%})" if usable else "coverage: no usable rows")
    for exp, use, emb, *_ in rows:
        flag = "  WARNING: below 95%" if use and emb / use < COVERAGE_WARNING else ""
        echo(f"  {exp:<36} {emb:>7}/{use:<7}{'' if not use else f' {emb / use:.1%}'}{flag}")
    missing = still_missing(con, plan.experiments)
    if missing and not opts.allow_partial:
        raise PartialResult(missing, "usable df02 rows without an embedding")
    listed = {s.item for s in skipped} | set(plan.experiments_without_latents)
    skipped += [m for m in missing if m.item not in listed and m.where not in listed]
    bad = non_finite_count(con)
    if bad:
        raise MorphlakeError(f"df03 has {bad} row(s) with non-finite z values; no legacy file was written",
                             "find them with the dbt test finite_values_df03_z_ and re-embed or fix the store")
    outputs = {}
    df03 = plan.writes[0]
    sql, params = df03_sql(con, plan.experiments)
    outputs[str(df03)] = write_csv_atomic(con, sql, params, df03)
    crash_point("csv")
    if opts.train_name:
        target = opts.root / "training_data" / opts.train_name / "embryo_metadata_with_embeddings.csv"
        if opts.train_name in train_files(opts.root):
            sql, params = train_sql(con, opts.train_name)
            outputs[str(target)] = write_csv_atomic(con, sql, params, target)
        else:
            echo(f"  note: no training metadata {opts.root / 'training_data' / opts.train_name}; "
                 f"{target.name} not written")
    if opts.export_analysis_copies:
        for exp in plan.experiments:
            target = opts.data_root / "metadata" / "metadata_n_embeddings" / opts.model_name / f"df03_{exp}.csv"
            sql, params = df03_sql(con, [exp])
            outputs[str(target)] = write_csv_atomic(con, sql, params, target)
            crash_point("csv")
    shas = [r[0] for r in con.sql("select distinct model_sha256 from df03 where model_sha256 is not null").fetchall()]
    sidecar = plan.writes[1]
    write_json_atomic(sidecar, {
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_id": record.run_id,
        "model_name": opts.model_name, "model_sha256": shas, "encoder": record.data.get("encoder"),
        "root": str(opts.root), "data_root": str(opts.data_root), "lake": str(opts.lake.root),
        "morphlake_version": __version__, "git_commit": git_commit(),
        "parameters": record.data["params"], "coverage": coverage, "outputs": outputs,
    })
    for path, n in outputs.items():
        echo(f"wrote {path} ({n} rows)")
    echo(f"wrote {sidecar}")
    return outputs, coverage
