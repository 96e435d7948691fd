"""`morphlake build06`: the legacy one-shot step — ingest, embed what is missing, dbt, legacy CSV exports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from morphlake import __version__
from morphlake.common.extras import install_hint
from morphlake.common.progress import step_progress
from morphlake.embed.model import Encoder, file_sha256
from morphlake.errors import MorphlakeError, PartialResult
from morphlake.ingest.errors import Skipped
from morphlake.ingest.latents import list_latent_files
from morphlake.lake.faults import crash_point
from morphlake.lake.files import write_atomic
from morphlake.lake.layout import Lake
from morphlake.lake.runs import RunRecord, write_json_atomic
from morphlake.legacy.outputs import (
    check_outputs_free,
    coverage_sql,
    df03_sql,
    git_commit,
    missing_sql,
    non_finite_count,
    register_legacy_rows,
    train_sql,
    write_csv_atomic,
    z_mu_columns_of,
)
from morphlake.legacy.plan import Build06Options, Plan, describe_plan, exported_encoder_path, make_plan
from morphlake.legacy.store import completed_store, store_naming, store_sql
from morphlake.report.summary import coverage_text
from morphlake.steps.build.step import run_build
from morphlake.steps.embed.step import run_embed
from morphlake.steps.ingest_step import run_ingest
from morphlake.steps.lifecycle import EXIT_COMPLETE, RunResult, lake_run

log = logging.getLogger("morphlake")
COVERAGE_WARNING = 0.95
GENERATE_HINT = "pass --generate-missing-latents to embed them, or --allow-partial to write what exists"
NO_IMAGE_HINT = (
    "they have no readable snip to embed (training_data/bf_embryo_snips/<experiment>/ under the data root): "
    "restore the images, or pass --allow-partial to write what exists (exit 2, listed beside df03)"
)


def missing_latents(plan: Plan) -> list[Skipped]:
    """Without generation: one item per experiment with no store file, and per df02 snip an existing store file
    lacks."""
    items = [
        Skipped("latents", exp, "legacy latent store", "experiment has no latents in the legacy store")
        for exp in plan.experiments_without_latents
    ]
    for exp, snips in plan.missing.items():
        if exp in plan.latent_files:
            items += [
                Skipped("latents", s, str(plan.latent_files[exp]), "no latents in the legacy store") for s in snips
            ]
    return items


def fail_on_missing(plan: Plan) -> None:
    without = plan.experiments_without_latents
    partial = {e: len(s) for e, s in plan.missing.items() if e in plan.latent_files}
    parts = []
    if without:
        parts.append(f"experiment(s) with no latents: {', '.join(without)}")
    if partial:
        parts.append("snips missing from the store: " + ", ".join(f"{e} ({n})" for e, n in partial.items()))
    raise MorphlakeError(
        f"{plan.missing_count} df02 row(s) have no legacy latents — " + "; ".join(parts), GENERATE_HINT
    )


def resolve_encoder(plan: Plan, opts: Build06Options) -> Path:
    """encoder.onnx from the model folder, or one exported on the fly into <lake>/models/<model>/."""
    source = plan.encoder
    if source.kind == "none" or source.path is None:  # a path is there for every other kind
        raise MorphlakeError(
            f"--generate-missing-latents needs an encoder for {opts.model_name}: {source.detail}",
            f"export one with `morphlake export-onnx --state-dict <model folder>/encoder_reformatted.pt "
            f"-o {opts.dirs.model_dir(opts.model_name) / 'encoder.onnx'}` "
            f"(it needs PyTorch: {install_hint('export')})",
        )
    path = source.path
    if source.kind == "state_dict":
        from morphlake.embed.export import export_encoder

        out = exported_encoder_path(opts.lake, opts.model_name, path)
        if not out.is_file():
            log.info("exporting %s to %s", path, out)
            exported = export_encoder(path, path.parent / "model_config.json", model_name=opts.model_name)
            write_atomic(out, exported.model.SerializeToString())
        path = out
    name = Encoder(path, device="cpu").info.model_name
    if name != opts.model_name:
        raise MorphlakeError(
            f"{path} is an encoder for model {name!r}, not {opts.model_name!r}",
            "use the encoder of this model, or re-export it with --model-name",
        )
    return path


def still_missing(con: duckdb.DuckDBPyConnection) -> list[Skipped]:
    rows = con.sql(missing_sql()).fetchall()
    return [Skipped("df03", snip, exp, "df02 row without latents") for exp, snip in rows]


def run_build06(opts: Build06Options, echo: Callable[[str], None]) -> RunResult | None:
    """Run the legacy step (exit code 0 complete, 2 partial; raises on failure); a dry run prints the plan
    and returns None."""
    plan = make_plan(opts)
    if opts.dry_run:
        echo(describe_plan(plan, opts))
        return None
    check_outputs_free(plan.outputs.all(), opts.overwrite)
    generate = opts.generate_missing_latents and plan.to_embed_count > 0
    if generate and plan.encoder.kind == "none":
        resolve_encoder(plan, opts)  # says how to get one
    if not opts.allow_partial and not opts.generate_missing_latents and plan.missing_count:
        fail_on_missing(plan)  # before touching anything
    params = {
        k: str(v.root if isinstance(v, Lake) else v) if isinstance(v, (Path, Lake)) else v
        for k, v in vars(opts).items()
    }
    with lake_run(opts.lake, "build06", params, allow_partial=opts.allow_partial) as run:
        if not opts.generate_missing_latents:
            run.skip(missing_latents(plan))
        encoder = resolve_encoder(plan, opts) if generate else None
        encoder_sha = file_sha256(encoder) if encoder else plan.encoder_sha256
        run.record.count("planned_to_embed", plan.to_embed_count)
        with run.record.timed("ingest"):
            # a merge reads df02, the store and the training metadata only: no snip folder is needed
            step = run_ingest(
                opts.lake,
                opts.root,
                opts.data_root,
                model_name=opts.model_name,
                experiments=opts.experiments,
                allow_partial=opts.allow_partial,
                scan_images=opts.generate_missing_latents,
            )
        run.skip(step.skipped)
        run.record.set("ingest_run", step.run_id)
        counts = step.record["counts"]
        echo(f"ingest: {counts.get('df02_rows')} df02 rows, {counts.get('latent_rows')} legacy latent rows")
        if encoder is not None:
            with run.record.timed("embed"):
                step = run_embed(
                    opts.lake,
                    encoder,
                    experiments=sorted(e for e, n in plan.to_embed.items() if n),
                    allow_partial=opts.allow_partial,
                )
            run.skip(step.skipped)
            run.record.set("embed_run", step.run_id)
            run.record.set("encoder", step.record.get("encoder"))
            run.record.count("embedded", step.record["counts"].get("embedded", 0))
            echo(
                f"embed: {step.record['counts'].get('embedded', 0)} snip(s) embedded with {encoder} "
                f"on {step.record['provider']['used']} (planned {plan.to_embed_count})"
            )
        with run.record.timed("dbt"):
            built = run_build(opts.lake, opts.model_name, z_schema=opts.z_schema, coverage_severity="warn")
        run.record.set("build_run", built.run_id)
        if built.exit_code != EXIT_COMPLETE:
            details = "; ".join(f"{f['node']}: {f['message']}" for f in built.failures)
            log_file = built.record.get("dbt_log")
            raise MorphlakeError(
                f"dbt build failed: {details or built.record.get('error')}",
                f"see {opts.lake.runs_dir / (built.run_id + '.json')}"
                + (f" and dbt's log {log_file}" if log_file else ""),
            )
        with run.record.timed("exports"), duckdb.connect(str(opts.lake.warehouse), read_only=True) as con:
            outputs, coverage, _ = write_outputs(
                con, plan, opts, run.record, echo, run.skipped, encoder_sha256=encoder_sha
            )
        run.record.set("outputs", outputs)
        run.record.set("coverage", coverage)
    result = run.result
    echo(f"build06: {result.record['outcome']}; run record {opts.lake.runs_dir / (result.run_id + '.json')}")
    if result.skipped:
        echo(
            f"  {len(result.skipped)} item(s) skipped, listed in {plan.outputs.partial_manifest} "
            f"and {result.record['partial_manifest']}"
        )
    return result


def report_coverage(con, echo) -> tuple[dict, int]:
    """Both coverages of the legacy df03 (all df02 rows, the legacy step's; and usable rows), warning under 95%."""
    rows = con.sql(coverage_sql()).fetchall()
    total = [sum(r[i] for r in rows) for i in range(1, 5)]  # df02, df03, usable, usable in df03
    share = lambda part, whole: round(part / whole, 6) if whole else None  # noqa: E731
    coverage = {
        "overall": share(total[1], total[0]),
        "usable": share(total[3], total[2]),
        "df02_rows": total[0],
        "df03_rows": total[1],
        "usable_rows": total[2],
        "usable_embedded": total[3],
        "per_experiment": {
            r[0]: {
                "df02_rows": r[1],
                "df03_rows": r[2],
                "coverage": share(r[2], r[1]),
                "usable_rows": r[3],
                "usable_embedded": r[4],
                "usable_coverage": share(r[4], r[3]),
                "legacy": r[5],
                "onnx": r[6],
            }
            for r in rows
        },
    }
    warn = lambda part, whole: "  WARNING: below 95%" if whole and part / whole < COVERAGE_WARNING else ""  # noqa: E731
    echo(
        f"coverage: {coverage_text(total[1], total[0])} df02 rows in df03{warn(total[1], total[0])}; "
        f"usable rows (use_embryo_flag): {coverage_text(total[3], total[2])}"
    )
    for exp, d02, d03, use, emb, *_ in rows:
        echo(f"  {exp:<36} {coverage_text(d03, d02):<22} usable {coverage_text(emb, use)}{warn(d03, d02)}")
    return coverage, total[1]


def store_files_to_write(con, plan: Plan, skipped: list[Skipped]) -> list[str]:
    """Experiments whose generated store file can be written: every df02 row has an embedding now (a partial
    file would count as the experiment's store and never be completed); the others are listed as skipped."""
    complete = []
    for exp, target in plan.outputs.store.items():
        have = con.sql(
            "select count(*) from df03 join df02_order using (snip_id, experiment_date) where experiment_date = ?",
            params=[exp],
        ).fetchall()[0][0]
        if have == plan.rows[exp]:
            complete.append(exp)
        else:
            skipped.append(
                Skipped(
                    "latents",
                    exp,
                    str(target),
                    f"store file not written: {plan.rows[exp] - have} "
                    f"of {plan.rows[exp]} df02 rows have no embedding (listed here)",
                )
            )
    return complete


def filled_gaps(con, plan: Plan, encoder_sha256: str | None) -> dict[str, list[str]]:
    """Per experiment, the df02 snips its store file lacks that df03 now holds from the encoder generation runs,
    fp32 and legacy-faithful (what --generate-missing-latents made for them, now or in an earlier run)."""
    gaps = [(snip, exp) for exp, snips in plan.gaps.items() for snip in snips]
    if not gaps or encoder_sha256 is None:
        return {}
    con.register("gap_keys", pa.table({"snip_id": [g[0] for g in gaps], "experiment_date": [g[1] for g in gaps]}))
    rows = con.sql(
        "select experiment_date, snip_id from df03 join gap_keys using (snip_id, experiment_date) "
        "where embedding_source = 'onnx' and embed_options is null and model_sha256 = ? order by all",
        params=[encoder_sha256],
    ).fetchall()
    filled: dict[str, list[str]] = {}
    for exp, snip in rows:
        filled.setdefault(exp, []).append(snip)
    return filled


def generated_latents(plan: Plan, opts: Build06Options, filled: dict[str, list[str]], encoder_sha256) -> dict:
    """The sidecar's (and partial manifest's) account of the latents this step generated: new store files, and the
    rows of existing store files' gaps, with whether they went into the file (--overwrite) or are in df03 only."""
    return {
        "encoder_sha256": encoder_sha256,
        "precision": "fp32",
        "new_store_files": {exp: str(path) for exp, path in plan.outputs.store.items()},
        "store_gaps": {
            exp: {
                "store_file": str(plan.latent_files[exp]),
                "in_store": exp in plan.outputs.completed,
                "snip_ids": snips,
            }
            for exp, snips in filled.items()
        },
    }


def write_outputs(
    con,
    plan: Plan,
    opts: Build06Options,
    record: RunRecord,
    echo,
    skipped: list[Skipped],
    *,
    encoder_sha256: str | None = None,
):
    """Coverage and finiteness checks, then the store files, the legacy CSVs, the partial manifest and the
    sidecar (last: it says the others are complete); returns (outputs, coverage, counts)."""
    con.register("df02_order", plan.df02_order)
    generated = store_files_to_write(con, plan, skipped)
    filled = filled_gaps(con, plan, encoder_sha256) if opts.generate_missing_latents else {}
    register_legacy_rows(
        con,
        order=plan.df02_order,
        stored=plan.stored,
        generated=generated,
        filled=[(snip, exp) for exp, snips in filled.items() for snip in snips],
        train_order=plan.train_order,
    )
    coverage, df03_rows = report_coverage(con, echo)
    missing = still_missing(con)
    if missing and not opts.allow_partial:
        problem = MorphlakeError(
            str(PartialResult(missing, "df02 rows without latents")).split("\n  hint:")[0],
            NO_IMAGE_HINT if opts.generate_missing_latents else GENERATE_HINT,
        )
        problem.skipped = missing
        raise problem
    if df03_rows == 0:
        raise MorphlakeError(
            "no df02 row has latents of the model, so df03 would be empty; nothing was written",
            GENERATE_HINT.replace(", or --allow-partial to write what exists", ""),
        )
    if skipped and not opts.allow_partial:  # e.g. a generated store file that cannot be written whole
        raise PartialResult(skipped, "items")
    listed = {s.item for s in skipped} | set(plan.experiments_without_latents)
    skipped += [m for m in missing if m.item not in listed and m.where not in listed]
    bad = non_finite_count(con)
    if bad:
        raise MorphlakeError(
            f"df03 has {bad} row(s) with non-finite z values; no legacy file was written",
            "find them with the dbt test finite_values_df03_z_ and re-embed or fix the store",
        )
    # an earlier run's sidecar and manifest (there only with --overwrite) must not outlive a crash below
    plan.outputs.sidecar.unlink(missing_ok=True)
    plan.outputs.partial_manifest.unlink(missing_ok=True)
    outputs: dict[str, int] = {}
    # temporaries go to the run's staging in the lake (swept by the next run), not into the user's folders
    scratch = opts.lake.staging_dir / record.run_id
    _, nuisance = store_naming(list(list_latent_files(opts.data_root, opts.model_name).values()))
    dim = len(z_mu_columns_of(con, "df03"))
    completed = {exp: path for exp, path in plan.outputs.completed.items() if filled.get(exp)}
    files = len(generated) + len(completed) + 1
    files += bool(plan.outputs.train and plan.train_order is not None) + len(plan.outputs.copies)
    with step_progress("build06: legacy files", files, unit="files") as progress:

        def write(sql_params: tuple[str, list], target: Path) -> int:
            rows = write_csv_atomic(con, *sql_params, target, replace=opts.overwrite, scratch=scratch)
            progress.advance()
            return rows

        for exp in generated:
            target = plan.outputs.store[exp]
            outputs[str(target)] = write(
                store_sql(con, model_name=opts.model_name, experiment=exp, nuisance=nuisance, dim=dim), target
            )
            crash_point("csv")
        for exp, target in completed.items():  # the file's bytes kept, the generated rows after them
            data, outputs[str(target)] = completed_store(
                con, target, model_name=opts.model_name, experiment=exp, snips=filled[exp]
            )
            write_atomic(target, data, scratch=scratch)
            progress.advance()
            crash_point("csv")
        outputs[str(plan.outputs.df03)] = write(
            df03_sql(con, plan.experiments, columns=plan.df02_columns), plan.outputs.df03
        )
        crash_point("csv")
        if plan.outputs.train:
            assert opts.train_name is not None  # plan_outputs sets outputs.train from it
            if plan.train_order is not None:
                outputs[str(plan.outputs.train)] = write(
                    train_sql(con, opts.train_name, columns=plan.train_columns), plan.outputs.train
                )
            else:
                echo(
                    f"  note: no training metadata {opts.dirs.train_csv(opts.train_name)}; "
                    f"{plan.outputs.train.name} not written"
                )
        for exp, target in plan.outputs.copies.items():
            outputs[str(target)] = write(df03_sql(con, [exp], columns=plan.df02_columns), target)
            crash_point("csv")
    counts = {
        "processed": sum(plan.rows.values()),
        "succeeded": df03_rows,
        "skipped": sum(plan.rows.values()) - df03_rows,
    }
    manifest = plan.outputs.partial_manifest
    generation = generated_latents(plan, opts, filled, encoder_sha256) if opts.generate_missing_latents else None
    if skipped:
        write_json_atomic(
            manifest,
            {
                "run_id": record.run_id,
                "command": "build06",
                "output": str(plan.outputs.df03),
                "counts": counts,
                "skipped_snip_ids": [m.item for m in missing],
                "skipped": [s.to_dict() for s in skipped],
                **({"generated_latents": generation} if generation else {}),
            },
            scratch=scratch,
        )
    shas = [
        r[0] for r in con.sql("select distinct model_sha256 from legacy_rows where model_sha256 is not null").fetchall()
    ]
    write_json_atomic(
        plan.outputs.sidecar,
        {
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run_id": record.run_id,
            "outcome": "partial" if skipped else "complete",
            "counts": counts,
            "partial_manifest": str(manifest) if skipped else None,
            "model_name": opts.model_name,
            "model_sha256": shas,
            "encoder": record.data.get("encoder"),
            "root": str(opts.root),
            "data_root": str(opts.data_root),
            "lake": str(opts.lake.root),
            "morphlake_version": __version__,
            "git_commit": git_commit(),
            "parameters": record.data["params"],
            "coverage": coverage,
            "outputs": outputs,
            **({"generated_latents": generation} if generation else {}),
        },
        scratch=scratch,
    )
    for exp, snips in filled.items():
        store = plan.latent_files[exp]
        where = f"appended to {store}" if exp in completed else "not in the store file (--overwrite appends them)"
        echo(f"{exp}: {len(snips)} latent(s) generated for the df02 rows {store.name} lacks, in df03; {where}")
    for path, n in outputs.items():
        echo(f"wrote {path} ({n} rows{' appended' if path in map(str, completed.values()) else ''})")
    if skipped:
        echo(f"wrote {manifest}")
    echo(f"wrote {plan.outputs.sidecar}")
    return outputs, coverage, counts
