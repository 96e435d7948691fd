"""The `morphlake` command line: a thin layer over the pipeline steps (exit 0 complete, 1 failed, 2 partial)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from morphlake import DEFAULT_MODEL_NAME, __version__
from morphlake.embed.errors import EmbedError
from morphlake.ingest.errors import InputError
from morphlake.lake.layout import Lake, default_lake
from morphlake.steps.lifecycle import EXIT_FAILED, EXIT_USAGE, RunResult

log = logging.getLogger("morphlake")

lake_option = click.option(
    "--lake",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lake root (default: $MORPHLAKE_LAKE, else ./lake).",
)
partial_option = click.option(
    "--allow-partial",
    is_flag=True,
    help="Skip bad items instead of failing; they are listed in runs/<run_id>.partial.json and the exit code is 2.",
)


class VariadicOption(click.Option):
    """`--experiments A B C` as the legacy scripts pass it (click options otherwise take one value each)."""

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            take = option.process

            def process(value, state, take=take):
                take(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    take(state.rargs.pop(0), state)

            option.process = process


experiments_option = click.option(
    "--experiments",
    cls=VariadicOption,
    multiple=True,
    metavar="EXP…",
    help="Limit the run to these experiments: --experiments A B C (commas and repeating the option work too).",
)


def split_names(values: tuple[str, ...]) -> list[str] | None:
    names = [n for v in values for n in v.replace(",", " ").split() if n]
    return names or None


def report(result: RunResult, lake: Lake) -> None:
    """One summary line per step on stdout; where the run record (and partial manifest) is."""
    rec = result.record
    parts = rec.get("partitions", {})
    click.echo(
        f"{rec['command']}: {rec['outcome']} — {len(parts.get('published', []))} partition(s) written, "
        f"{len(parts.get('unchanged', []))} unchanged; run record {lake.runs_dir / (result.run_id + '.json')}"
    )
    if result.skipped:
        click.echo(f"  {len(result.skipped)} item(s) skipped, listed in {rec.get('partial_manifest')}", err=True)


class MorphlakeGroup(click.Group):
    """Turns the project's named errors into a clear message and exit code 1, never a traceback; a usage error
    (an unknown option, a bad value) exits 64, not click's 2, which here means a partial run."""

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # a ClassVar in click's types; click exits with the instance's
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # the command's own options and arguments are parsed in here
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # (a ClassVar in click's types, as above)
            raise
        except (InputError, EmbedError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_FAILED)


@click.group(cls=MorphlakeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="morphlake")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(quiet: bool) -> None:
    """morphlake: snips -> legacy encoder (ONNX) -> Parquet lake -> df03 (dbt-duckdb).

    \b
    Try it:  morphlake demo
    Then:    morphlake sql "select * from df03 limit 5"
             morphlake status; morphlake report -o report.html
    """
    # morphlake's own progress at INFO; the libraries it runs (onnxruntime's quantization, Ray) speak from WARNING
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("morphlake").setLevel(logging.WARNING if quiet else logging.INFO)


@main.command()
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Where to write the synthetic data root (also the data root).",
)
@lake_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data and demo encoder weights.")
@click.option("--embryos", type=click.IntRange(1, 96), default=4, show_default=True, help="Embryos per experiment.")
@click.option("--timepoints", type=click.IntRange(1, 9999), default=5, show_default=True, help="Snips per embryo.")
@click.option(
    "--experiments",
    "n_experiments",
    type=click.IntRange(1, 200),
    default=3,
    show_default=True,
    help="Number of experiments.",
)
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True)
def demo(*, root, lake, seed, embryos, timepoints, n_experiments, model_name):
    """Make a synthetic data root and run the whole pipeline on it.

    \b
    Example:
      morphlake demo --root ./demo-data --lake ./lake --seed 0
    """
    from morphlake.demo.data_root import DemoSpec, make_demo_root
    from morphlake.demo.pipeline import run_demo_pipeline
    from morphlake.lake.files import refuse_inside
    from morphlake.steps.build.step import find_project

    find_project()  # before writing anything: the build at the end needs the dbt project
    root = refuse_inside(Lake.at(lake).root, root, option="--root")
    spec = DemoSpec(seed=seed, embryos=embryos, timepoints=timepoints, experiments=n_experiments)
    summary = make_demo_root(root, spec, model_name)
    click.echo(
        f"demo data root: {summary['root']} ({summary['snips']} snips in {len(summary['experiments'])} "
        f"experiments; legacy store covers {', '.join(summary['latent_store'])})"
    )
    code = run_demo_pipeline(
        Lake.at(lake), Path(summary["root"]), model_name, encoder=Path(summary["encoder"]), echo=click.echo
    )
    sys.exit(code)


@main.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="morphseq root: metadata/combined_metadata_files/embryo_metadata_df02.csv, training_data/*/.",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Data root with training_data/bf_embryo_snips/ and analysis/latent_embeddings/ "
    "(default: $MORPHSEQ_DATA_ROOT, else --root).",
)
@click.option(
    "--model-name", default=DEFAULT_MODEL_NAME, show_default=True, help="Which legacy latent store to ingest."
)
@click.option(
    "--snips/--no-snips",
    "scan_images",
    default=True,
    show_default=True,
    help="--no-snips: metadata only (df02, training metadata, the latent store), e.g. where the snip "
    "images are not mounted; the snip ledger is left as it is. Also the case when the data root "
    "has no training_data/bf_embryo_snips/ at all.",
)
@click.option(
    "--retire-missing",
    is_flag=True,
    help="Snips whose image file is gone (or, with --allow-partial, unreadable) since the last ingest leave the "
    "ledger, and their ONNX embeddings leave the lake (without it they stay, marked, and `build` warns).",
)
@experiments_option
@lake_option
@partial_option
def ingest(*, root, data_root, model_name, scan_images, retire_missing, experiments, lake, allow_partial):
    """Bring df02, training metadata, the snip ledger and the legacy latent store into the lake.

    df02 is taken whole: without --experiments, experiments no longer in df02 leave raw/df02 (and so
    df03); their embeddings and ledger stay in the lake (`morphlake status` lists them).

    A snip image that is gone since the last ingest stays in the ledger marked missing (its embeddings stay;
    `morphlake build` warns, naming it): restore the file, or pass --retire-missing.

    \b
    Example:
      morphlake ingest --root /data/morphseq --data-root /data/morphseq --lake ./lake
      morphlake ingest --root /data/morphseq --no-snips --lake ./lake   # metadata only
      morphlake ingest --root /data/morphseq --lake ./lake --retire-missing
    """
    from morphlake.steps.ingest_step import run_ingest

    data_root = data_root or (Path(os.environ["MORPHSEQ_DATA_ROOT"]) if os.environ.get("MORPHSEQ_DATA_ROOT") else root)
    if retire_missing and not scan_images:
        raise click.UsageError("--retire-missing needs the snips scanned: leave out --no-snips")
    the_lake = Lake.at(lake)
    result = run_ingest(
        the_lake,
        root,
        data_root,
        model_name=model_name,
        experiments=split_names(experiments),
        allow_partial=allow_partial,
        scan_images=scan_images,
        retire_missing=retire_missing,
    )
    report(result, the_lake)
    sys.exit(result.exit_code)


@main.command()
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Encoder ONNX file (from `morphlake export-onnx` or the demo).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: CUDA when a GPU works, else CPU (the log and run record say which ran); "
    "cuda: fail if no GPU can be used.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=None,
    help="Snips per encoder run (default: 64 on the CPU, 256 on CUDA).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Threads (default: CPU count, at most 8 on the CPU; every core on CUDA). On the CPU each decodes a batch "
    "and runs the encoder on it; on CUDA they decode for the GPU. With --engine ray: at most this many encoder actors "
    "(default: one per CPU, or per GPU on CUDA).",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 256),
    default=1,
    show_default=True,
    help="onnxruntime intra-op threads per batch (0: onnxruntime's default, one per core).",
)
@click.option(
    "--decode",
    type=click.Choice(["legacy", "reduced", "gpu"]),
    default="legacy",
    show_default=True,
    help="reduced: JPEG snips that are an exact 2x/4x/8x of 288x128 decode straight to that size "
    "(faster; small drift from the legacy BILINEAR resize). gpu: grey JPEG snips decode on the GPU "
    "(nvImageCodec, the gpu-decode extra; --device cuda) and resize there as Pillow does; other snips decode "
    "on the CPU; each run first checks it against the legacy decode on up to 128 of its snips and refuses it "
    "below --min-cosine. Both are recorded in embed_options.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="int8 runs faster on CPUs, fp16 on GPUs; the copy is made once under <lake>/models/ "
    "(int8 calibrates on the ledger's first 128 snips) and recorded in embed_options. Each run "
    "first checks the copy against fp32 on this machine, on up to 128 of the snips it embeds, and "
    "refuses it below --min-cosine.",
)
@click.option(
    "--min-cosine",
    type=click.FloatRange(-1.0, 1.0),
    default=0.99,
    show_default=True,
    help="Smallest cosine between a --precision copy's z_mu and fp32's (or a --decode's and the legacy decode's), "
    "on the snips the run checks it on, that the run accepts (the figure goes into the run record).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: threads in this process; ray: Ray Data (the ray extra): decoding in CPU tasks, the encoder in "
    "actors (one per GPU with --device cuda/auto on GPU hosts), the same plan, lake and run record.",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    default=None,
    help="With --engine ray: join this Ray cluster (e.g. head-node:6379, from `ray start --head`); "
    "default: start a local Ray instance sized to this machine and stop it at the end.",
)
@experiments_option
@lake_option
@partial_option
def embed(
    *,
    model,
    device,
    batch_size,
    workers,
    threads,
    decode,
    precision,
    min_cosine,
    engine,
    ray_address,
    experiments,
    lake,
    allow_partial,
):
    """Embed every ledger snip that has no current embedding for the model.

    A snip is current when the legacy store has it, or when an ONNX embedding with the same model sha256
    and image fingerprint, and the same --decode / --precision, exists; anything else is (re-)embedded.

    \b
    Examples:
      morphlake embed --model demo-data/models/legacy/20241107_ds_sweep01_optimum/encoder.onnx --lake ./lake
      morphlake embed --model /shared/encoder.onnx --lake /shared/lake --engine ray --ray-address head:6379
    """
    from morphlake.steps.embed.options import EmbedOptions
    from morphlake.steps.embed.step import run_embed

    the_lake = Lake.at(lake)
    options = EmbedOptions(
        device=device,
        batch_size=batch_size,
        workers=workers,
        threads=threads,
        decode=decode,
        precision=precision,
        min_cosine=min_cosine,
        engine=engine,
        ray_address=ray_address,
    )
    result = run_embed(
        the_lake, model, options=options, experiments=split_names(experiments), allow_partial=allow_partial
    )
    report(result, the_lake)
    sys.exit(result.exit_code)


@main.command()
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True, help="Whose embeddings df03 joins.")
@click.option(
    "--z-schema",
    type=click.Choice(["auto", "flat", "bio_nuisance"]),
    default="auto",
    show_default=True,
    help="z column names in df03: flat (z_mu_00), bio_nuisance (z_mu_n_00, z_mu_b_20), or auto "
    "(the naming of the model's legacy store; flat when there is none).",
)
@click.option(
    "--coverage-threshold",
    type=float,
    default=None,
    help="Share of usable df02 rows that must have an embedding (dbt var; default 0.95).",
)
@click.option(
    "--coverage-severity",
    type=click.Choice(["error", "warn"]),
    default=None,
    help="Whether low coverage fails the build (default error).",
)
@click.option(
    "--full",
    is_flag=True,
    help="Rebuild everything with dbt, even where the lake and the SQL did not change since the last build.",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="dbt project (default: the one installed with morphlake; the checkout's dbt_project/ for an editable "
    "install).",
)
@lake_option
def build(*, model_name, z_schema, coverage_threshold, coverage_severity, full, project_dir, lake):
    """Build the warehouse (dbt: staging views, df03, coverage, training join, tests) and the df03 Parquet export,
    published together; only what changed since the last build is redone (the run record says what and why).

    \b
    Example:
      morphlake build --lake ./lake --z-schema bio_nuisance
    """
    from morphlake.steps.build.step import run_build

    the_lake = Lake.at(lake)
    result = run_build(
        the_lake,
        model_name,
        z_schema=z_schema,
        coverage_threshold=coverage_threshold,
        coverage_severity=coverage_severity,
        full=full,
        project_dir=project_dir,
    )
    report_build(result, the_lake)
    sys.exit(result.exit_code)


def report_build(result, lake: Lake) -> None:
    from morphlake.report.summary import describe_df03

    dbt = result.record.get("dbt", {})
    if result.exit_code == 0:
        click.echo(describe_df03(lake))
    else:
        if result.failures or not result.record.get("error"):
            click.echo(f"error: the build failed ({len(result.failures)} failing node(s)):", err=True)
        else:  # failed before any node ran (e.g. dbt could not parse the project)
            click.echo(f"error: the build failed: {result.record['error']}", err=True)
        for failure in result.failures:
            echo_problem(failure)
        if dbt.get("skipped"):
            click.echo(f"  skipped because of the failures above: {', '.join(dbt['skipped'])}", err=True)
        if dbt.get("exception"):
            click.echo(f"  {dbt['exception']}", err=True)
        if result.record.get("dbt_log"):
            click.echo(f"  dbt's log: {result.record['dbt_log']}", err=True)
        click.echo("  the published warehouse and export were kept", err=True)
    for warning in dbt.get("warnings") or []:
        echo_problem(warning, prefix="warning: ")
    click.echo(f"build: {result.record['outcome']}; run record {lake.runs_dir / (result.run_id + '.json')}")


def echo_problem(problem: dict, *, prefix: str = "  - ") -> None:
    """A failing or warning dbt node on stderr: its message, the first rows its test found, and the hint."""
    click.echo(f"{prefix}{problem['node']}: {problem['status']}: {problem['message']}", err=True)
    examples = problem.get("examples") or []
    for row in examples:
        click.echo(f"      {row}", err=True)
    if examples and (problem.get("failures") or 0) > len(examples):
        click.echo(f"      … and {problem['failures'] - len(examples)} more", err=True)
    if problem.get("hint"):
        click.echo(f"    hint: {problem['hint']}", err=True)


@main.command("export-onnx")
@click.option(
    "--state-dict",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="encoder_reformatted.pt (the encoder's plain state dict).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="model_config.json (default: the one beside the state dict).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the ONNX file (default: encoder.onnx beside the state dict).",
)
@click.option("--model-name", default=None, help="Model name stored in the file (default: the model folder's name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export_onnx(*, state_dict, config, output, model_name, overwrite):
    """Export the legacy encoder to a verified, self-describing ONNX file (needs the `export` extra).

    \b
    Example:
      morphlake export-onnx --state-dict models/legacy/20241107_ds_sweep01_optimum/encoder_reformatted.pt \\
          --config models/legacy/20241107_ds_sweep01_optimum/model_config.json -o encoder.onnx
    """
    from morphlake.embed.export import export_encoder
    from morphlake.embed.model import file_sha256
    from morphlake.lake.files import write_atomic

    output = output or state_dict.parent / "encoder.onnx"
    config = config or state_dict.parent / "model_config.json"
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists", "pass --overwrite to replace it, or choose another -o")
    exported = export_encoder(state_dict, config, model_name=model_name)
    write_atomic(output, exported.model.SerializeToString())
    click.echo(
        f"wrote {output} (model {exported.model_name}, sha256 {file_sha256(output)[:12]}…); "
        f"matches the PyTorch reference to a relative error of {exported.max_relative_error:.1e}"
    )


@main.command()
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="morphseq root (metadata/combined_metadata_files/, training_data/).",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data root (default: $MORPHSEQ_DATA_ROOT).",
)
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True)
@experiments_option
@click.option(
    "--generate-missing-latents",
    is_flag=True,
    help="Give every df02 row whose snip is readable a latent, with the fp32 encoder "
    "<data-root>/models/legacy/<model>/encoder.onnx (or exported on the fly from encoder_reformatted.pt when "
    "PyTorch is installed): experiments without a store file get one; rows an existing store file lacks go into "
    "df03 (and into that file only with --overwrite).",
)
@click.option("--train-name", default=None, help="Also write training_data/<T>/embryo_metadata_with_embeddings.csv.")
@click.option(
    "--export-analysis-copies",
    is_flag=True,
    help="Also write <data-root>/metadata/metadata_n_embeddings/<model>/df03_<exp>.csv.",
)
@click.option("--dry-run", is_flag=True, help="List what would be read, embedded and written; write nothing.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing legacy output files (and append generated rows to store files that lack them).",
)
@partial_option
@click.option(
    "--z-schema",
    type=click.Choice(["auto", "flat", "bio_nuisance"]),
    default="auto",
    show_default=True,
    help="z column names in the CSVs.",
)
@lake_option
def build06(
    *,
    root,
    data_root,
    model_name,
    experiments,
    generate_missing_latents,
    train_name,
    export_analysis_copies,
    dry_run,
    overwrite,
    allow_partial,
    z_schema,
    lake,
):
    """The legacy Build06 step: ingest, embed what is missing, dbt, and the legacy CSV files.

    Writes <root>/metadata/combined_metadata_files/embryo_metadata_df03.csv (df02 columns in their order,
    then the z columns) and a .meta.json sidecar beside it. Existing files are kept unless --overwrite.

    \b
    Example:
      morphlake build06 --root /data/morphseq --data-root /data/morphseq \\
          --model-name 20241107_ds_sweep01_optimum --generate-missing-latents --dry-run
    """
    from morphlake.legacy.build06 import run_build06
    from morphlake.legacy.plan import Build06Options

    if data_root is None:
        if not os.environ.get("MORPHSEQ_DATA_ROOT"):
            raise InputError(
                "no data root: --data-root is not given and MORPHSEQ_DATA_ROOT is not set",
                "pass --data-root DIR or export MORPHSEQ_DATA_ROOT=DIR",
            )
        data_root = Path(os.environ["MORPHSEQ_DATA_ROOT"])
    if not data_root.is_dir():
        raise InputError(f"data root {data_root} is not a folder", "check --data-root / MORPHSEQ_DATA_ROOT")
    opts = Build06Options(
        root=root.absolute(),
        data_root=data_root.absolute(),
        model_name=model_name,
        lake=Lake.at(lake),
        experiments=split_names(experiments),
        generate_missing_latents=generate_missing_latents,
        train_name=train_name,
        export_analysis_copies=export_analysis_copies,
        dry_run=dry_run,
        overwrite=overwrite,
        allow_partial=allow_partial,
        z_schema=z_schema,
    )
    result = run_build06(opts, click.echo)
    sys.exit(result.exit_code if result else 0)


@main.command()
@click.argument("old", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--key", default="snip_id", show_default=True, help="Row key.")
@click.option(
    "--tolerance",
    type=float,
    default=0.0,
    show_default=True,
    help="Largest absolute z difference still counted as equal.",
)
def compare(*, old, new, key, tolerance):
    """Compare two df03 or latent files (CSV or Parquet): rows only in one side, and per z column the
    largest absolute difference. Flat and bio/nuisance z names are matched by index. Values are compared at
    float32 when either file was written at float32 (Parquet: its columns' type; CSV: text of at most 9
    significant digits), else at float64; the output says which, and the tolerance.
    Exit code 0 when equal (within --tolerance), 1 when they differ.

    \b
    Example:
      morphlake compare old/embryo_metadata_df03.csv metadata/combined_metadata_files/embryo_metadata_df03.csv
    """
    from morphlake.legacy.compare import compare as run
    from morphlake.legacy.compare import describe

    result = run(old, new, key)
    click.echo(describe(result, old, new, tolerance=tolerance))
    sys.exit(0 if result.equal(tolerance) else 1)


@main.command()
@click.option("--model-name", default=None, help="Only this model (default: every model in the lake).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON, for scripts.")
@click.option("--brief", is_flag=True, help="Leave out the per-experiment lines.")
@lake_option
def status(*, model_name, as_json, brief, lake):
    """Show the lake: tables and rows; per model, the coverage of df02 overall and per experiment (legacy
    store / ONNX rows), stale embeddings (image changed since), experiments no longer in df02, the writer
    running now (pid, host, command, since when) and the last failed run with its error and hint.

    \b
    Example:
      morphlake status --lake ./lake
      morphlake status --lake ./lake --json | jq '.models[0].total'
    """
    import json

    from morphlake.report.health import lake_health
    from morphlake.report.status import lake_status

    if as_json:  # always JSON on stdout, a failure too (scripts parse it): {"error": …, "hint": …}, exit 1
        try:
            the_lake = Lake.at(lake)
            if not the_lake.root.is_dir():
                raise InputError(f"no lake at {the_lake.root}", "run `morphlake ingest` or `morphlake demo` first")
            click.echo(json.dumps(lake_health(the_lake, model_name), indent=2, default=str))
        except InputError as exc:
            where = str(Path(lake or default_lake()).absolute())
            click.echo(json.dumps({"lake": where, "error": exc.message, "hint": exc.hint}, indent=2))
            sys.exit(EXIT_FAILED)
        return
    click.echo(lake_status(Lake.at(lake), model_name, per_experiment=not brief))


@main.command()
@click.argument("query")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the whole result to FILE.csv or FILE.parquet instead of printing it.",
)
@click.option("--max-rows", type=click.IntRange(1), default=40, show_default=True, help="Rows printed (head and tail).")
@click.option(
    "--raw", is_flag=True, help="Query the raw lake (df02, train, snips, embeddings) even when a warehouse exists."
)
@lake_option
def sql(*, query, output, max_rows, raw, lake):
    """Run a SQL query (DuckDB) read-only against the lake's warehouse (df03, df03_coverage, train_embeddings,
    stg_* views), or against the raw lake (views df02, train, snips, embeddings) when there is no
    warehouse yet or with --raw. Prints a table; -o writes CSV or Parquet.

    \b
    Examples:
      morphlake sql "select * from df03 limit 5"
      morphlake sql "select experiment_date, coverage_all from df03_coverage" -o coverage.csv
      morphlake sql --raw "select model_name, source, count(*) from embeddings group by all"
    """
    import duckdb

    from morphlake.lake.files import refuse_inside
    from morphlake.report.query import output_kind, render, run_sql, write

    the_lake = Lake.at(lake)
    if output:  # checked before the query runs
        output = refuse_inside(the_lake.root, output, option="-o")
        output_kind(output)
    con, relation = run_sql(the_lake, query, raw=raw)  # con: kept open while the relation is read
    try:
        if output:
            click.echo(f"wrote {output} ({write(relation, output)} rows)")
        else:
            click.echo(render(relation, max_rows=max_rows))
    except duckdb.Error as exc:
        raise InputError(
            f"the query failed: {str(exc).strip()}", "check it against the tables: morphlake sql 'show tables'"
        ) from None


@main.command()
@click.argument("snip_id")
@click.option("-k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many neighbours.")
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True, help="Whose embeddings.")
@lake_option
def neighbours(*, snip_id, k, model_name, lake):
    """The K snips nearest SNIP_ID by cosine similarity of z_mu, with their df02 metadata (the snips df03
    holds: the same answer as the README's df03 query, read from the embeddings Parquet).

    \b
    Example:
      morphlake neighbours 20240626_A01_e01_t0000 -k 10 --lake ./lake
    """
    import duckdb

    from morphlake.report.neighbours import nearest
    from morphlake.report.query import render

    found = nearest(Lake.at(lake), snip_id, model_name=model_name, k=k)
    click.echo(render(duckdb.connect().from_arrow(found.table.to_arrow()), max_rows=k + 1))
    if found.zero_norm:
        click.echo(
            f"note: {found.zero_norm} embedding(s) of model {model_name} with an all-zero z_mu were left out "
            "(no cosine similarity with them; `morphlake status` counts them)",
            err=True,
        )


@main.command("report")
@click.option("--model-name", default=DEFAULT_MODEL_NAME, show_default=True, help="Whose embeddings.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the page.",
)
@click.option(
    "--map",
    "method",
    type=click.Choice(["pca", "umap"]),
    default="pca",
    show_default=True,
    help="The embedding map's projection (umap needs the `umap` extra).",
)
@click.option(
    "--sample",
    type=click.IntRange(2, 1_000_000),
    default=20_000,
    show_default=True,
    help="df03 rows drawn (seeded) for the map's projection and the dimension figures.",
)
@click.option(
    "--points", type=click.IntRange(1, 100_000), default=5_000, show_default=True, help="Of those, how many to plot."
)
@click.option(
    "--thumbnails",
    type=click.IntRange(0, 5_000),
    default=300,
    show_default=True,
    help="Plotted points whose snip image is embedded (about 2-3 KB each).",
)
@click.option(
    "--against",
    default=None,
    help="ONNX model to compare the legacy store with (default: another model in the lake with the same width "
    "and ONNX rows for the store's snips).",
)
@click.option("--zn-frac", type=click.FloatRange(0, 1), default=0.2, show_default=True, help="Nuisance share of z.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@lake_option
def report_command(*, model_name, output, method, sample, points, thumbnails, against, zn_frac, seed, lake):
    """Write one self-contained HTML page (opens offline) about a model's embeddings: coverage of df02 per
    experiment, an embedding map (PCA of z_mu, by perturbation and by stage; click a point for its snip),
    nuisance vs biological dimensions, legacy store vs ONNX agreement, and the run history.

    \b
    Example:
      morphlake report --lake ./lake -o report.html
      morphlake report --model-name 20241107_ds_sweep01_optimum --map umap -o umap.html
    """
    from morphlake.lake.files import refuse_inside
    from morphlake.report.page import ReportOptions, write_report

    the_lake = Lake.at(lake)
    output = refuse_inside(the_lake.root, output, option="-o")
    options = ReportOptions(
        model_name=model_name,
        sample=sample,
        points=min(points, sample),
        thumbnails=thumbnails,
        method=method,
        zn_frac=zn_frac,
        against=against,
        seed=seed,
    )
    done = write_report(the_lake, output, options)
    click.echo(
        f"wrote {done['path']} ({done['bytes'] / 1e6:.1f} MB, {done['seconds']:.1f} s): model {model_name}, "
        f"{done['rows']} embeddings, map of {done['map_points']} of a {done['sample']}-row sample, "
        f"{done['thumbnails']} thumbnails, {done['agreement_snips']} snips compared with ONNX"
    )


if __name__ == "__main__":
    main()
