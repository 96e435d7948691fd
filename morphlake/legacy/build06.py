"""`morphlake build06`: the legacy one-shot step — ingest, embed what is missing, dbt, legacy CSV exports."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import duckdb

from morphlake.embed.model import Encoder
from morphlake.ingest.errors import Skipped
from morphlake import __version__
from morphlake.legacy.plan import Build06Options, Plan, describe_plan, exported_encoder_path, make_plan
from morphlake.steps.embed_step import embed
from morphlake.errors import MorphlakeError, PartialResult
from morphlake.lake.faults import crash_point
from morphlake.steps.ingest_step import ingest
from morphlake.legacy.store import store_naming, store_sql
from morphlake.lake.layout import Lake
from morphlake.legacy.outputs import (check_outputs_free, df03_sql, git_commit, missing_sql, non_finite_count,
                                      train_sql, write_csv_atomic, z_mu_columns_of)
from morphlake.lake.lock import LakeLock
from morphlake.lake.runs import RunRecord, write_json_atomic
from morphlake.steps.build_step import build
from morphlake.report.summary import coverage_text
from morphlake.steps.lifecycle import EXIT_COMPLETE, EXIT_PARTIAL

log = logging.getLogger("morphlake")
COVERAGE_WARNING = 0.95
GAPS_HINT = ("the legacy store lacks them and --generate-missing-latents only creates missing store files (as the "
             "legacy step did); pass --allow-partial to write what exists (exit 2, listed beside df03), or "
             "`morphlake embed` them into the lake first")
GENERATE_HINT = "pass --generate-missing-latents to embed them, or --allow-partial to write what exists"


def missing_latents(plan: Plan) -> list[Skipped]:
    """One item per experiment with no store file, and per df02 snip the store lacks elsewhere."""
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
    raise MorphlakeError(f"{plan.missing_count} df02 row(s) have no legacy latents — " + "; ".join(parts),
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
        from morphlake.embed.export import export_onnx

        out = exported_encoder_path(opts.lake, opts.model_name, path)
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
    return con.sql("select experiment_date, df02_rows, df03_rows, usable_rows, embedded_rows, legacy_rows, onnx_rows "
                   "from df03_coverage where list_contains(?, experiment_date) order by experiment_date",
                   params=[experiments]).fetchall()


def still_missing(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> list[Skipped]:
    rows = con.sql(missing_sql(), params=[experiments]).fetchall()
    return [Skipped("df03", snip, exp, "df02 row without an embedding") for exp, snip in rows]


def run_build06(opts: Build06Options, echo: Callable[[str], None]) -> int:
    """Run the legacy step; returns the exit code (0 complete, 2 partial); raises on failure."""
    plan = make_plan(opts)
    if opts.dry_run:
        echo(describe_plan(plan, opts))
        return EXIT_COMPLETE
    check_outputs_free(plan.outputs.all(), opts.overwrite)
    generate = opts.generate_missing_latents and plan.to_embed_count > 0
    if plan.missing_count and not opts.generate_missing_latents and not opts.allow_partial:
        fail_on_missing(plan)  # before touching anything; with generation, the gaps are known after the build
    record = RunRecord("build06", {k: str(v.root if isinstance(v, Lake) else v) if isinstance(v, (Path, Lake)) else v
                                   for k, v in vars(opts).items()})
    skipped: list[Skipped] = [] if opts.generate_missing_latents else missing_latents(plan)
    with LakeLock(opts.lake.lock_file, "build06", record.run_id):
        try:
            encoder = resolve_encoder(plan, opts) if generate else None
            with record.timed("ingest"):
                # a merge reads df02, the store and the training metadata only: no snip folder is needed
                step = ingest(opts.lake, opts.root, opts.data_root, opts.model_name, opts.experiments,
                              opts.allow_partial, scan_images=opts.generate_missing_latents)
            skipped += step.skipped
            record.set("ingest_run", step.run_id)
            echo(f"ingest: {step.record['counts'].get('df02_rows')} df02 rows, {step.record['counts'].get('latent_rows')} "
                 f"legacy latent rows")
            record.count("planned_to_embed", plan.to_embed_count)
            if encoder is not None:
                with record.timed("embed"):
                    step = embed(opts.lake, encoder, experiments=sorted(e for e, n in plan.to_embed.items() if n),
                                 allow_partial=opts.allow_partial)
                skipped += step.skipped
                record.set("embed_run", step.run_id)
                record.set("encoder", step.record.get("encoder"))
                record.count("embedded", step.record["counts"].get("embedded", 0))
                echo(f"embed: {step.record['counts'].get('embedded', 0)} snip(s) embedded with {encoder} "
                     f"on {step.record['provider']['used']} (planned {plan.to_embed_count})")
            with record.timed("dbt"):
                built = build(opts.lake, opts.model_name, opts.z_schema, coverage_severity="warn", quiet=True)
            record.set("build_run", built.run_id)
            if built.exit_code != EXIT_COMPLETE:
                details = "; ".join(f"{f['node']}: {f['message']}" for f in built.failures)
                raise MorphlakeError(f"dbt build failed: {details or built.record.get('error')}",
                                     f"see {opts.lake.runs_dir / (built.run_id + '.json')}")
            with record.timed("exports"), duckdb.connect(str(opts.lake.warehouse), read_only=True) as con:
                outputs, coverage, counts = write_outputs(con, plan, opts, record, echo, skipped)
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
        echo(f"  {len(skipped)} item(s) skipped, listed in {plan.outputs.partial_manifest} "
             f"and {record.data['partial_manifest']}")
    return EXIT_PARTIAL if skipped else EXIT_COMPLETE


def report_coverage(con, plan: Plan, echo) -> tuple[dict, int]:
    """Both coverages (all df02 rows, the legacy step's; and usable rows), with a warning under 95%."""
    rows = coverage_rows(con, plan.experiments)
    total = [sum(r[i] for r in rows) for i in range(1, 5)]  # df02, df03, usable, usable embedded
    share = lambda part, whole: round(part / whole, 6) if whole else None  # noqa: E731
    coverage = {"overall": share(total[1], total[0]), "usable": share(total[3], total[2]),
                "df02_rows": total[0], "df03_rows": total[1], "usable_rows": total[2], "usable_embedded": total[3],
                "per_experiment": {r[0]: {"df02_rows": r[1], "df03_rows": r[2], "coverage": share(r[2], r[1]),
                                          "usable_rows": r[3], "usable_embedded": r[4], "usable_coverage": share(r[4], r[3]),
                                          "legacy": r[5], "onnx": r[6]} for r in rows}}
    warn = lambda part, whole: "  WARNING: below 95%" if whole and part / whole < COVERAGE_WARNING else ""  # noqa: E731
    echo(f"coverage: {coverage_text(total[1], total[0])} df02 rows in df03{warn(total[1], total[0])}; "
         f"usable rows (use_embryo_flag): {coverage_text(total[3], total[2])}")
    for exp, d02, d03, use, emb, *_ in rows:
        echo(f"  {exp:<36} {coverage_text(d03, d02):<22} usable {coverage_text(emb, use)}{warn(d03, d02)}")
    return coverage, total[1]


def write_outputs(con, plan: Plan, opts: Build06Options, record: RunRecord, echo, skipped: list[Skipped]):
    """Coverage and finiteness checks, then the store files, the legacy CSVs, the partial manifest and the
    sidecar (last: it says the others are complete); returns (outputs, coverage, counts)."""
    coverage, df03_rows = report_coverage(con, plan, echo)
    missing = still_missing(con, plan.experiments)
    if missing and not opts.allow_partial:
        problem = PartialResult(missing, "df02 rows without an embedding")
        if opts.generate_missing_latents:
            problem = MorphlakeError(str(problem).split("\n  hint:")[0], GAPS_HINT)
            problem.skipped = missing
        raise problem
    if df03_rows == 0:
        raise MorphlakeError("no df02 row has an embedding of the model, so df03 would be empty; nothing was written",
                             GENERATE_HINT.replace(", or --allow-partial to write what exists", ""))
    listed = {s.item for s in skipped} | set(plan.experiments_without_latents)
    skipped += [m for m in missing if m.item not in listed and m.where not in listed]
    bad = non_finite_count(con)
    if bad:
        raise MorphlakeError(f"df03 has {bad} row(s) with non-finite z values; no legacy file was written",
                             "find them with the dbt test finite_values_df03_z_ and re-embed or fix the store")
    con.register("df02_order", plan.df02_order)
    if plan.train_order is not None:
        con.register("train_order", plan.train_order)
    outputs: dict[str, int] = {}
    _, nuisance = store_naming(list(plan.latent_files.values()))
    for exp, target in plan.outputs.store.items():
        sql, params = store_sql(con, model_name=opts.model_name, experiment=exp, nuisance=nuisance,
                                dim=len(z_mu_columns_of(con, "df03")))
        outputs[str(target)] = write_csv_atomic(con, sql, params, target)
        crash_point("csv")
    sql, params = df03_sql(con, plan.experiments)
    outputs[str(plan.outputs.df03)] = write_csv_atomic(con, sql, params, plan.outputs.df03)
    crash_point("csv")
    if plan.outputs.train:
        if plan.train_order is not None:
            sql, params = train_sql(con, opts.train_name)
            outputs[str(plan.outputs.train)] = write_csv_atomic(con, sql, params, plan.outputs.train)
        else:
            echo(f"  note: no training metadata {opts.root / 'training_data' / opts.train_name}; "
                 f"{plan.outputs.train.name} not written")
    for exp, target in plan.outputs.copies.items():
        sql, params = df03_sql(con, [exp])
        outputs[str(target)] = write_csv_atomic(con, sql, params, target)
        crash_point("csv")
    counts = {"processed": sum(plan.rows.values()), "succeeded": df03_rows,
              "skipped": sum(plan.rows.values()) - df03_rows}
    manifest = plan.outputs.partial_manifest
    if skipped:
        write_json_atomic(manifest, {
            "run_id": record.run_id, "command": "build06", "output": str(plan.outputs.df03), "counts": counts,
            "skipped_snip_ids": [m.item for m in missing], "skipped": [s.to_dict() for s in skipped]})
    else:
        manifest.unlink(missing_ok=True)  # a stale one from an earlier partial run (--overwrite was given)
    shas = [r[0] for r in con.sql("select distinct model_sha256 from df03 where model_sha256 is not null").fetchall()]
    write_json_atomic(plan.outputs.sidecar, {
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run_id": record.run_id,
        "outcome": "partial" if skipped else "complete", "counts": counts,
        "partial_manifest": str(manifest) if skipped else None,
        "model_name": opts.model_name, "model_sha256": shas, "encoder": record.data.get("encoder"),
        "root": str(opts.root), "data_root": str(opts.data_root), "lake": str(opts.lake.root),
        "morphlake_version": __version__, "git_commit": git_commit(),
        "parameters": record.data["params"], "coverage": coverage, "outputs": outputs,
    })
    for path, n in outputs.items():
        echo(f"wrote {path} ({n} rows)")
    if skipped:
        echo(f"wrote {manifest}")
    echo(f"wrote {plan.outputs.sidecar}")
    return outputs, coverage, counts
