"""build06's plan: what a run would read, embed and write, found by reading only (the --dry-run report)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ingest import read_df02
from ingest.csvfile import read_csv_strings
from ingest.errors import InputError, Skipped
from ingest.latents import list_latent_files
from ingest.ledger import snip_dir
from ingest.naming import IMAGE_EXTENSIONS, check_segment, normalise_stem, normalise_stem_expr
from morphlake.ingest_step import df02_path, train_files
from morphlake.layout import Lake

DF03_CSV = Path("metadata") / "combined_metadata_files" / "embryo_metadata_df03.csv"
SIDECAR_SUFFIX = ".meta.json"


@dataclass
class Build06Options:
    """Every build06 flag, as the legacy step took them."""

    root: Path
    data_root: Path
    model_name: str
    lake: Lake
    experiments: list[str] | None = None
    generate_missing_latents: bool = False
    train_name: str | None = None
    export_analysis_copies: bool = False
    dry_run: bool = False
    overwrite: bool = False
    allow_partial: bool = False
    z_schema: str = "auto"


@dataclass
class EncoderSource:
    kind: str            # onnx | state_dict | none
    path: Path | None
    detail: str


@dataclass
class Plan:
    experiments: list[str]
    usable: dict[str, int]                        # experiment -> usable df02 rows
    latent_files: dict[str, Path]                 # experiment -> legacy store file
    covered: dict[str, int]                       # experiment -> usable rows the store covers
    missing: dict[str, list[str]]                 # experiment -> usable snip_ids without latents
    with_image: dict[str, int]                    # experiment -> missing snips that have an image file
    encoder: EncoderSource
    reads: list[Path]
    writes: list[Path]
    df02_skipped: list[Skipped] = field(default_factory=list)

    @property
    def missing_count(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def experiments_without_latents(self) -> list[str]:
        return [e for e in self.experiments if e not in self.latent_files]


def output_paths(opts: Build06Options, experiments: list[str]) -> list[Path]:
    """The legacy files this run writes (and must not replace without --overwrite)."""
    df03 = opts.root / DF03_CSV
    paths = [df03, df03.with_name(df03.name + SIDECAR_SUFFIX)]
    if opts.train_name:
        check_segment("training set name", opts.train_name)
        paths.append(opts.root / "training_data" / opts.train_name / "embryo_metadata_with_embeddings.csv")
    if opts.export_analysis_copies:
        folder = opts.data_root / "metadata" / "metadata_n_embeddings" / opts.model_name
        paths += [folder / f"df03_{exp}.csv" for exp in experiments]
    return paths


def find_encoder(data_root: Path, model_name: str) -> EncoderSource:
    """encoder.onnx in the model folder, else a state dict to export (needs torch), else none."""
    folder = Path(data_root) / "models" / "legacy" / model_name
    onnx_file = folder / "encoder.onnx"
    if onnx_file.is_file():
        return EncoderSource("onnx", onnx_file, f"{onnx_file}")
    state = folder / "encoder_reformatted.pt"
    if state.is_file() and (folder / "model_config.json").is_file():
        if importlib.util.find_spec("torch") is None:
            return EncoderSource("none", state, f"{state} exists, but exporting it needs PyTorch (the export extra)")
        return EncoderSource("state_dict", state, f"export {state} to ONNX in the lake (PyTorch present)")
    return EncoderSource("none", None, f"neither {onnx_file} nor {state} (+ model_config.json) exists")


def _image_stems(data_root: Path, experiment: str) -> set[str]:
    folder = snip_dir(data_root, experiment)
    if not folder.is_dir():
        return set()
    return {normalise_stem(p.name) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS}


def make_plan(opts: Build06Options) -> Plan:
    """Read df02, the legacy store's snip ids and the snip folders; write nothing."""
    check_segment("model name", opts.model_name)
    df02, skipped = read_df02(df02_path(opts.root), opts.experiments)
    frame = pl.from_arrow(df02)
    experiments = sorted(set(frame["experiment_date"].to_list()))
    usable = frame.filter(pl.col("use_embryo_flag").fill_null(False))
    latent_files = {e: p for e, p in list_latent_files(opts.data_root, opts.model_name).items() if e in experiments}
    plan_usable, covered, missing, with_image = {}, {}, {}, {}
    for exp in experiments:
        ids = usable.filter(pl.col("experiment_date") == exp)["snip_id"].to_list()
        plan_usable[exp] = len(ids)
        store = set()
        if exp in latent_files:
            stored = read_csv_strings(latent_files[exp], "latent", columns=["snip_id"])
            if "snip_id" not in stored.columns:
                raise InputError(f"latent file {latent_files[exp]} lacks the 'snip_id' column", "check the legacy store")
            store = set(stored.select(normalise_stem_expr("snip_id"))["snip_id"].drop_nulls().to_list())
        lacking = [s for s in ids if s not in store]
        covered[exp] = len(ids) - len(lacking)
        if lacking:
            missing[exp] = lacking
            images = _image_stems(opts.data_root, exp)
            with_image[exp] = sum(1 for s in lacking if s in images)
    reads = [df02_path(opts.root), *latent_files.values(), *(snip_dir(opts.data_root, e) for e in experiments)]
    if opts.train_name and opts.train_name in train_files(opts.root):
        reads.append(train_files(opts.root)[opts.train_name])
    encoder = find_encoder(opts.data_root, opts.model_name)
    if opts.generate_missing_latents and missing and encoder.path is not None:
        reads.append(encoder.path)
    return Plan(experiments, plan_usable, latent_files, covered, missing, with_image, encoder, reads,
                output_paths(opts, experiments), skipped)


def describe_plan(plan: Plan, opts: Build06Options) -> str:
    """The dry-run report: experiments, latents present and missing, snips to embed, files read and written."""
    lines = [f"build06 dry run (model {opts.model_name}; nothing is written)",
             f"experiments: {len(plan.experiments)}",
             f"  {'experiment':<36}{'usable':>8}{'latents':>9}{'missing':>9}  store file"]
    for exp in plan.experiments:
        store = plan.latent_files.get(exp)
        lines.append(f"  {exp:<36}{plan.usable[exp]:>8}{plan.covered[exp]:>9}{len(plan.missing.get(exp, [])):>9}  "
                     f"{store.name if store else '(none)'}")
    if plan.experiments_without_latents:
        lines.append(f"experiments with no latents: {', '.join(plan.experiments_without_latents)}")
    if opts.generate_missing_latents:
        lines.append(f"snips to embed: {sum(plan.with_image.values())} of {plan.missing_count} missing "
                     f"(the rest have no image file); encoder: {plan.encoder.detail}")
    else:
        lines.append(f"snips without latents: {plan.missing_count} (pass --generate-missing-latents to embed them)")
    lines.append(f"lake: {opts.lake.root}")
    lines.append("files read:")
    lines += [f"  {p}" for p in plan.reads]
    lines.append("files written:")
    for path in plan.writes:
        state = ("exists: replaced (--overwrite)" if opts.overwrite else "exists: needs --overwrite") if path.exists() else "new"
        lines.append(f"  {path}  [{state}]")
    if plan.df02_skipped:
        lines.append(f"df02 rows that would fail the run: {len(plan.df02_skipped)}")
        lines += [f"  - {s}" for s in plan.df02_skipped[:10]]
    return "\n".join(lines)
