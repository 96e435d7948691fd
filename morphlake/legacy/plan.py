"""build06's plan: what a run would read, embed and write, found by reading only (the --dry-run report)."""

from __future__ import annotations

import importlib.util
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from morphlake.common.frames import polars_frame
from morphlake.embed.model import file_sha256
from morphlake.ingest import read_df02, read_train, scan_snips
from morphlake.ingest.csvfile import read_csv_strings
from morphlake.ingest.errors import InputError, Skipped
from morphlake.ingest.latents import list_latent_files
from morphlake.ingest.naming import check_segment, normalise_stem_expr
from morphlake.lake import currency
from morphlake.lake.data_root import DataRoot
from morphlake.lake.layout import Lake
from morphlake.lake.snip_ledger import available
from morphlake.steps.ingest_step import previous_ledger

SIDECAR_SUFFIX = ".meta.json"
PARTIAL_SUFFIX = ".partial.json"


@dataclass(frozen=True)
class Build06Options:
    """Every build06 flag, as the legacy step took them."""

    root: Path
    data_root: Path
    model_name: str
    _: KW_ONLY
    lake: Lake
    experiments: list[str] | None = None
    generate_missing_latents: bool = False
    train_name: str | None = None
    export_analysis_copies: bool = False
    dry_run: bool = False
    overwrite: bool = False
    allow_partial: bool = False
    z_schema: str = "auto"

    @property
    def dirs(self) -> DataRoot:
        return DataRoot.at(self.root, self.data_root)


@dataclass(frozen=True)
class EncoderSource:
    kind: str  # onnx | state_dict | none
    path: Path | None
    detail: str


@dataclass(frozen=True)
class LegacyOutputs:
    """The files build06 writes in the user's folders (never replaced without --overwrite)."""

    df03: Path
    train: Path | None = None  # with --train-name
    copies: dict[str, Path] = field(default_factory=dict)  # experiment -> df03_<exp>.csv
    _: KW_ONLY
    store: dict[str, Path] = field(default_factory=dict)  # experiment -> generated morph_latents_<exp>.csv
    # experiment -> its existing store file, which gets the latents generated for its gaps appended (--overwrite)
    completed: dict[str, Path] = field(default_factory=dict)

    @property
    def sidecar(self) -> Path:
        return self.df03.with_name(self.df03.name + SIDECAR_SUFFIX)

    @property
    def partial_manifest(self) -> Path:
        return self.df03.with_name(self.df03.name + PARTIAL_SUFFIX)

    def all(self) -> list[Path]:
        """Every file a run may write, in the order it writes them."""
        return [
            *self.store.values(),
            *self.completed.values(),
            self.df03,
            *([self.train] if self.train else []),
            *self.copies.values(),
            self.partial_manifest,
            self.sidecar,
        ]


@dataclass(kw_only=True, frozen=True)
class Plan:
    """What build06 will read, run and write (make_plan; `--dry-run` prints it)."""

    experiments: list[str]
    rows: dict[str, int]  # experiment -> df02 rows
    usable: dict[str, int]  # experiment -> df02 rows with use_embryo_flag
    latent_files: dict[str, Path]  # experiment -> legacy store file
    covered: dict[str, int]  # experiment -> df02 rows the store covers
    missing: dict[str, list[str]]  # experiment -> df02 snip_ids without store latents
    to_embed: dict[str, int]  # experiment -> snips the embed step will run (generation only)
    embedded_before: dict[str, int]  # experiment -> missing snips the lake already embedded
    encoder: EncoderSource
    reads: list[Path]
    outputs: LegacyOutputs
    df02_order: pa.Table  # snip_id, experiment_date, df02_row: df02's file order
    df02_columns: list[str]  # df02's columns in its file's order (no pandas index)
    stored: pa.Table  # snip_id, experiment_date: the df02 rows the store covers
    train_order: pa.Table | None = None  # snip_id, train_row: the training metadata's file order
    train_columns: list[str] = field(default_factory=list)
    df02_skipped: list[Skipped] = field(default_factory=list)
    encoder_sha256: str | None = None  # of the ONNX file generation runs, when it exists already

    @property
    def missing_count(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def to_embed_count(self) -> int:
        return sum(self.to_embed.values())

    @property
    def gaps(self) -> dict[str, list[str]]:
        """df02 snip_ids that an existing store file lacks, per experiment (--generate-missing-latents generates
        them into df03; into the store file only with --overwrite)."""
        return {e: ids for e, ids in self.missing.items() if e in self.latent_files}

    @property
    def experiments_without_latents(self) -> list[str]:
        return [e for e in self.experiments if e not in self.latent_files]


def plan_outputs(
    opts: Build06Options, experiments: list[str], without_store: list[str], *, gaps: dict[str, Path]
) -> LegacyOutputs:
    """The legacy files this run writes (and must not replace without --overwrite); `gaps`: the store files that
    lack df02 rows."""
    dirs = opts.dirs
    train = None
    if opts.train_name:
        check_segment("training set name", opts.train_name)
        train = dirs.train_with_embeddings(opts.train_name)
    generated = opts.generate_missing_latents
    return LegacyOutputs(
        dirs.df03,
        train,
        copies={exp: dirs.analysis_copy(opts.model_name, exp) for exp in experiments}
        if opts.export_analysis_copies
        else {},
        store={exp: dirs.store_file(opts.model_name, exp) for exp in without_store} if generated else {},
        # the lab's files: completed only when asked to replace files
        completed=dict(gaps) if generated and opts.overwrite else {},
    )


def find_encoder(data_root: Path, model_name: str) -> EncoderSource:
    """encoder.onnx in the model folder, else a state dict to export (needs torch), else none."""
    folder = DataRoot.at(data_root).model_dir(model_name)
    onnx_file = folder / "encoder.onnx"
    if onnx_file.is_file():
        return EncoderSource("onnx", onnx_file, f"{onnx_file}")
    state = folder / "encoder_reformatted.pt"
    if state.is_file() and (folder / "model_config.json").is_file():
        if importlib.util.find_spec("torch") is None:
            return EncoderSource("none", state, f"{state} exists, but exporting it needs PyTorch (the export extra)")
        return EncoderSource("state_dict", state, f"export {state} to ONNX in the lake (PyTorch present)")
    return EncoderSource("none", None, f"neither {onnx_file} nor {state} (+ model_config.json) exists")


def exported_encoder_path(lake: Lake, model_name: str, state_dict: Path) -> Path:
    """Where an encoder exported on the fly from a state dict lives (in the lake, never the user's folder)."""
    return lake.models_dir(model_name) / f"encoder-{file_sha256(state_dict)[:16]}.onnx"


def encoder_sha256(opts: Build06Options, encoder: EncoderSource) -> str | None:
    """sha256 of the ONNX file the embed step would run, when it exists already."""
    if encoder.path is None:  # kind none
        return None
    if encoder.kind == "onnx":
        return file_sha256(encoder.path)
    if encoder.kind == "state_dict":
        exported = exported_encoder_path(opts.lake, opts.model_name, encoder.path)
        return file_sha256(exported) if exported.is_file() else None
    return None


def _store_ids(path: Path) -> set[str]:
    stored = read_csv_strings(path, "latent", columns=["snip_id"])
    if "snip_id" not in stored.columns:
        raise InputError(f"latent file {path} lacks the 'snip_id' column", "check the legacy store")
    return set(stored.select(normalise_stem_expr("snip_id"))["snip_id"].drop_nulls().to_list())


EMBEDDING_KEYS = {
    "snip_id": pl.String,
    "source": pl.String,
    "model_sha256": pl.String,
    "image_fingerprint": pl.String,
    "embed_options": pl.String,
}


def _embedded_rows(lake: Lake, model_name: str, experiment: str) -> pl.DataFrame:
    """The key columns of the lake's embeddings of one experiment (none: an empty frame), read once."""
    path = lake.partition_file("embeddings", model_name=model_name, experiment_date=experiment)
    if not path.is_file():
        return pl.DataFrame(schema=EMBEDDING_KEYS)
    part = pq.ParquetFile(path)
    rows = polars_frame(part.read(columns=[k for k in EMBEDDING_KEYS if k in part.schema_arrow.names]))
    return rows.with_columns(pl.lit(None, pl.String).alias(k) for k in EMBEDDING_KEYS if k not in rows.columns)


def _current(rows: pl.DataFrame, ledger: pa.Table, sha256: str | None) -> set[str]:
    """Snips the embed step counts as current in an experiment without a store file: its legacy rows (ingest
    leaves them), and ONNX rows of this encoder file, legacy-faithful, whose image fingerprint is the ledger's."""
    fingerprints = dict(zip(ledger["snip_id"].to_pylist(), ledger["fingerprint"].to_pylist()))
    return currency.current_snips(rows.to_arrow(), fingerprints, sha256=sha256, options=None)


@dataclass(frozen=True, kw_only=True)
class _Coverage:
    """Per experiment, what the legacy store covers of df02 and what generation would embed (make_plan's counts)."""

    rows: dict[str, int]
    usable: dict[str, int]
    covered: dict[str, int]
    missing: dict[str, list[str]]
    to_embed: dict[str, int]
    embedded_before: dict[str, int]
    stored: pa.Table  # snip_id, experiment_date


def _coverage(
    opts: Build06Options, frame: pl.DataFrame, *, latent_files: dict[str, Path], sha: str | None
) -> _Coverage:
    """Read each experiment's store snip ids (one at a time) and, when generating, count what embed would run."""
    rows, usable, covered, missing, to_embed, before, stored = {}, {}, {}, {}, {}, {}, []
    known = set(frame["snip_id"].to_list())
    for (exp,), part in sorted(frame.partition_by("experiment_date", as_dict=True).items()):
        ids = part["snip_id"].to_list()
        rows[exp], usable[exp] = len(ids), int(part["use_embryo_flag"].fill_null(False).sum())
        store = _store_ids(latent_files[exp]) if exp in latent_files else set()
        lacking = [s for s in ids if s not in store]
        covered[exp] = len(ids) - len(lacking)
        stored += [(s, exp) for s in ids if s in store]
        if not lacking:
            continue
        missing[exp] = lacking
        # every df02 row whose snip is readable gets a latent: the missing store files are generated (the legacy
        # step's "ensure missing morph_latents_<exp>.csv are created"), and so are the gaps of existing ones
        if opts.generate_missing_latents and opts.dirs.snip_dir(exp).is_dir():
            to_embed[exp], before[exp] = _to_generate(opts, exp, known=known, store=store, sha=sha)
    stored_table = pa.table(
        {
            "snip_id": pa.array([s for s, _ in stored], pa.string()),
            "experiment_date": pa.array([e for _, e in stored], pa.string()),
        }
    )
    return _Coverage(
        rows=rows,
        usable=usable,
        covered=covered,
        missing=missing,
        to_embed=to_embed,
        embedded_before=before,
        stored=stored_table,
    )


def _to_generate(
    opts: Build06Options, exp: str, *, known: set[str], store: set[str], sha: str | None
) -> tuple[int, int]:
    """(snips the embed step will run, missing snips the lake already embedded) of one experiment the store lacks."""
    # the same ledger ingest will write, so the plan's count is what embed then runs
    # fingerprints (a read of every image) only where ONNX rows must be compared with them
    embedded = _embedded_rows(opts.lake, opts.model_name, exp)
    hashed = bool((embedded["source"] == "onnx").any())
    ledger, _ = scan_snips(opts.data_root, exp, known, previous=previous_ledger(opts.lake, exp), fingerprint=hashed)
    ledger = available(ledger)  # embed leaves out the snips whose image is gone
    current = _current(embedded, ledger, sha)
    imaged = [s for s in ledger["snip_id"].to_pylist() if s not in store]
    to_embed = sum(1 for s in imaged if s not in current)
    return to_embed, len(imaged) - to_embed


def _file_order(frame: pl.DataFrame, column: str, *, keys: list[str]) -> pa.Table:
    """The key columns and each row's place in its file (`column`, int64)."""
    return frame.select(keys).with_row_index(column).select(*keys, pl.col(column).cast(pl.Int64)).to_arrow()


def _train_metadata(opts: Build06Options) -> tuple[Path | None, pa.Table | None, list[str]]:
    """--train-name's training metadata: its file, its order (snip_id, train_row) and columns; none without it."""
    train_sets = opts.dirs.train_sets()
    if not (opts.train_name and opts.train_name in train_sets):
        return None, None, []
    path = train_sets[opts.train_name]
    train, _ = read_train(path, opts.train_name, sort=False)
    columns = [c for c in train.column_names if c != "train_name"]
    return path, _file_order(polars_frame(train.select(["snip_id"])), "train_row", keys=["snip_id"]), columns


def make_plan(opts: Build06Options) -> Plan:
    """Read df02, the legacy store's snip ids and (only to generate latents) the snip folders; write nothing."""
    check_segment("model name", opts.model_name)
    df02, skipped = read_df02(opts.dirs.df02, opts.experiments, sort=False)
    frame = polars_frame(df02)
    experiments = sorted(set(frame["experiment_date"].to_list()))
    latent_files = {e: p for e, p in list_latent_files(opts.data_root, opts.model_name).items() if e in experiments}
    encoder = find_encoder(opts.data_root, opts.model_name)
    generate = opts.generate_missing_latents
    sha = encoder_sha256(opts, encoder) if generate else None
    cover = _coverage(opts, frame, latent_files=latent_files, sha=sha)
    train_file, train_order, train_columns = _train_metadata(opts)
    reads = [opts.dirs.df02, *latent_files.values(), *([train_file] if train_file else [])]
    if generate and cover.missing:
        reads += [opts.dirs.snip_dir(e) for e in cover.missing]
        if encoder.path is not None:
            reads.append(encoder.path)
    without_store = [e for e in experiments if e not in latent_files]
    gaps = {e: latent_files[e] for e in cover.missing if e in latent_files}
    return Plan(
        experiments=experiments,
        rows=cover.rows,
        usable=cover.usable,
        latent_files=latent_files,
        covered=cover.covered,
        missing=cover.missing,
        to_embed=cover.to_embed,
        embedded_before=cover.embedded_before,
        encoder=encoder,
        reads=reads,
        outputs=plan_outputs(opts, experiments, without_store, gaps=gaps),
        df02_order=_file_order(frame, "df02_row", keys=["snip_id", "experiment_date"]),
        df02_columns=frame.columns,
        stored=cover.stored,
        train_order=train_order,
        train_columns=train_columns,
        df02_skipped=skipped,
        encoder_sha256=sha,
    )


def describe_plan(plan: Plan, opts: Build06Options) -> str:
    """The dry-run report: experiments, latents present and missing, snips to embed, files read and written."""
    lines = [
        f"build06 dry run (model {opts.model_name}; nothing is written)",
        f"experiments: {len(plan.experiments)}",
        f"  {'experiment':<36}{'df02':>7}{'usable':>8}{'latents':>9}{'missing':>9}  store file",
    ]
    for exp in plan.experiments:
        store = plan.latent_files.get(exp)
        lines.append(
            f"  {exp:<36}{plan.rows[exp]:>7}{plan.usable[exp]:>8}{plan.covered[exp]:>9}"
            f"{len(plan.missing.get(exp, [])):>9}  {store.name if store else '(none)'}"
        )
    if plan.experiments_without_latents:
        lines.append(f"experiments with no latents: {', '.join(plan.experiments_without_latents)}")
    if opts.generate_missing_latents:
        no_image = plan.missing_count - plan.to_embed_count - sum(plan.embedded_before.values())
        lines.append(
            f"snips to embed: {plan.to_embed_count} of {plan.missing_count} df02 rows without latents "
            f"({sum(plan.embedded_before.values())} already embedded in the lake, {no_image} without a usable "
            f"image file); encoder: {plan.encoder.detail}"
        )
        lines += [f"  {exp:<36}{n:>7}" for exp, n in plan.to_embed.items() if n]
        gaps = sum(len(v) for v in plan.gaps.values())
        if gaps:
            lines.append(
                f"df02 rows the existing store files lack: {gaps}, generated with the fp32 encoder into df03 and "
                "listed in the sidecar as not in the store; "
                + (
                    "appended to their store files (--overwrite; the files' rows kept as they are)"
                    if opts.overwrite
                    else "the store files stay as they are (--overwrite appends them)"
                )
            )
    else:
        lines.append(
            f"df02 rows without latents: {plan.missing_count} (pass --generate-missing-latents to embed "
            "them; no snip folder is read without it)"
        )
    lines.append(
        f"lake: {opts.lake.root} (ingest{', embed' if opts.generate_missing_latents else ''}, build: "
        "raw/, embeddings/, warehouse.duckdb, exports/df03/, runs/)"
    )
    lines.append("files read:")
    lines += [f"  {p}" for p in plan.reads]
    lines.append("files written:")
    for path in plan.outputs.all():
        state = (
            ("exists: replaced (--overwrite)" if opts.overwrite else "exists: needs --overwrite")
            if path.exists()
            else "new"
        )
        note = "  (only if the run is partial)" if path == plan.outputs.partial_manifest else ""
        if path in plan.outputs.completed.values():
            state, note = "exists: the generated rows appended, its rows kept (--overwrite)", ""
        lines.append(f"  {path}  [{state}]{note}")
    if plan.df02_skipped:
        lines.append(f"df02 rows that would fail the run: {len(plan.df02_skipped)}")
        lines += [f"  - {s}" for s in plan.df02_skipped[:10]]
    return "\n".join(lines)
