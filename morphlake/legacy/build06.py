"""`morphlake build06`: the legacy one-shot step — ingest, embed what is missing, dbt, legacy CSV exports."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import duckdb

from morphlake.common.extras import install_hint
from morphlake.embed.model import Encoder, file_sha256
from morphlake.errors import MorphlakeError
from morphlake.ingest.errors import Skipped
from morphlake.lake.files import write_atomic
from morphlake.lake.layout import Lake
from morphlake.legacy.outputs import (
    check_outputs_free,
)
from morphlake.legacy.plan import Build06Options, Plan, describe_plan, exported_encoder_path, make_plan
from morphlake.legacy.writer import GENERATE_HINT, LegacyWriter
from morphlake.steps.lifecycle import LakeRun, RunResult, lake_run
from morphlake.steps.pipeline import Pipeline, Summaries, run_pipeline

log = logging.getLogger("morphlake")
Echo = Callable[[str], None]


def missing_latents(plan: Plan) -> list[Skipped]:
    """Without generation: one item per experiment with no store file, and per df02 snip an existing store file
    lacks."""
    items = [
        Skipped("latents", exp, "legacy latent store", reason="experiment has no latents in the legacy store")
        for exp in plan.experiments_without_latents
    ]
    for exp, snips in plan.missing.items():
        if exp in plan.latent_files:
            items += [
                Skipped("latents", s, str(plan.latent_files[exp]), reason="no latents in the legacy store")
                for s in snips
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


def legacy_pipeline(plan: Plan, opts: Build06Options, *, encoder: Path | None) -> Pipeline:
    """build06's steps: its experiments only, embed (with an encoder) only what the plan lacks, coverage a
    warning, and terser summaries."""
    return Pipeline(
        lake=opts.lake,
        root=opts.root,
        data_root=opts.data_root,
        model_name=opts.model_name,
        experiments=opts.experiments,
        # a merge reads df02, the store and the training metadata only: no snip folder is needed
        scan_images=opts.generate_missing_latents,
        encoder=encoder,
        embed_experiments=sorted(e for e, n in plan.to_embed.items() if n),
        allow_partial=opts.allow_partial,
        z_schema=opts.z_schema,
        coverage_severity="warn",
        summaries=Summaries(ledger=False, destination=False, planned=plan.to_embed_count),
    )


def refuse_early(plan: Plan, opts: Build06Options) -> None:
    """What makes the run fail before it touches anything: outputs in the way, no encoder to generate with,
    missing latents in a strict run without generation."""
    check_outputs_free(plan.outputs.all(), opts.overwrite)
    if opts.generate_missing_latents and plan.to_embed_count > 0 and plan.encoder.kind == "none":
        resolve_encoder(plan, opts)  # says how to get one
    if not opts.allow_partial and not opts.generate_missing_latents and plan.missing_count:
        fail_on_missing(plan)


def run_params(opts: Build06Options) -> dict:
    """The run record's params: every option, paths as strings."""
    return {
        k: str(v.root if isinstance(v, Lake) else v) if isinstance(v, (Path, Lake)) else v
        for k, v in vars(opts).items()
    }


def write_exports(run: LakeRun, plan: Plan, opts: Build06Options, *, encoder_sha256: str | None, echo: Echo) -> None:
    """The legacy CSVs from the published warehouse, checked first; the run record lists them and the coverage."""
    with run.record.timed("exports"), duckdb.connect(str(opts.lake.warehouse), read_only=True) as con:
        writer = LegacyWriter(con, plan=plan, opts=opts, record=run.record, echo=echo, encoder_sha256=encoder_sha256)
        checked, more = writer.check(run.skipped)
        run.skip(more)
        outputs = writer.write(checked, skipped=run.skipped)
    run.record.set("outputs", outputs)
    run.record.set("coverage", checked.coverage)


def say_outcome(result: RunResult, plan: Plan, opts: Build06Options, *, echo: Echo) -> None:
    echo(f"build06: {result.record['outcome']}; run record {opts.lake.runs_dir / (result.run_id + '.json')}")
    if result.skipped:
        echo(
            f"  {len(result.skipped)} item(s) skipped, listed in {plan.outputs.partial_manifest} "
            f"and {result.record['partial_manifest']}"
        )


def run_build06(opts: Build06Options, echo: Echo) -> RunResult | None:
    """Run the legacy step (exit code 0 complete, 2 partial; raises on failure); a dry run prints the plan
    and returns None."""
    plan = make_plan(opts)
    if opts.dry_run:
        echo(describe_plan(plan, opts))
        return None
    refuse_early(plan, opts)  # before touching anything
    generate = opts.generate_missing_latents and plan.to_embed_count > 0
    with lake_run(opts.lake, "build06", run_params(opts), allow_partial=opts.allow_partial) as run:
        if not opts.generate_missing_latents:
            run.skip(missing_latents(plan))
        encoder = resolve_encoder(plan, opts) if generate else None
        encoder_sha = file_sha256(encoder) if encoder else plan.encoder_sha256
        run.record.count("planned_to_embed", plan.to_embed_count)
        done = run_pipeline(legacy_pipeline(plan, opts, encoder=encoder), echo=echo, parent=run)
        if done.build_failed:
            raise done.failure()
        write_exports(run, plan, opts, encoder_sha256=encoder_sha, echo=echo)
    say_outcome(run.result, plan, opts, echo=echo)
    return run.result
