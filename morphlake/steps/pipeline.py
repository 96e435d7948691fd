"""The pipeline in order (ingest -> embed -> build), its one-line summaries and its failed build (demo, build06)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from morphlake.errors import MorphlakeError
from morphlake.lake.layout import Lake
from morphlake.steps.build.step import run_build
from morphlake.steps.embed.step import run_embed
from morphlake.steps.ingest_step import run_ingest
from morphlake.steps.lifecycle import EXIT_COMPLETE, LakeRun, RunResult


@dataclass(frozen=True, kw_only=True)
class Summaries:
    """How the steps' one-line summaries read (the defaults are demo's)."""

    ledger: bool = True  # ingest: the ledger's snip count
    destination: bool = True  # ingest: "-> <lake>"
    planned: int | None = None  # embed: "with <encoder> … (planned N)" instead of "(<weights> weights)"

    def ingest(self, result: RunResult, lake: Lake) -> str:
        counts = result.record["counts"]
        snips = f", {counts.get('snips')} snips in the ledger" if self.ledger else ""
        where = f" -> {lake.root}" if self.destination else ""
        return (
            f"ingest: {counts.get('df02_rows')} df02 rows{snips}, {counts.get('latent_rows')} legacy latent rows{where}"
        )

    def embed(self, result: RunResult, encoder: Path) -> str:
        embedded, provider = result.record["counts"].get("embedded", 0), result.record["provider"]["used"]
        if self.planned is None:
            return f"embed: {embedded} snip(s) embedded on {provider} ({result.record['encoder']['weights']} weights)"
        return f"embed: {embedded} snip(s) embedded with {encoder} on {provider} (planned {self.planned})"


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """One run of ingest -> embed -> build on a lake: its inputs and what each step is asked to do."""

    lake: Lake
    root: Path
    data_root: Path
    model_name: str
    experiments: list[str] | None = None  # ingest: these experiments only (None: all of df02)
    scan_images: bool = True  # ingest: read the snip folders into the ledger
    encoder: Path | None = None  # embed: the ONNX file (None: no embed step)
    embed_experiments: list[str] | None = None  # embed: these experiments only
    allow_partial: bool = False  # ingest and embed
    z_schema: str = "auto"  # build
    coverage_severity: str | None = None  # build: None keeps the dbt project's
    summaries: Summaries = field(default_factory=Summaries)

    def ingest(self) -> RunResult:
        return run_ingest(
            self.lake,
            self.root,
            self.data_root,
            model_name=self.model_name,
            experiments=self.experiments,
            allow_partial=self.allow_partial,
            scan_images=self.scan_images,
        )

    def embed(self, encoder: Path) -> RunResult:
        return run_embed(self.lake, encoder, experiments=self.embed_experiments, allow_partial=self.allow_partial)

    def build(self) -> RunResult:
        return run_build(self.lake, self.model_name, z_schema=self.z_schema, coverage_severity=self.coverage_severity)


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    """What a pipeline run ended with: the steps' worst exit code, and the build's result."""

    exit_code: int
    build: RunResult
    lake: Lake

    @property
    def build_failed(self) -> bool:
        return self.build.exit_code != EXIT_COMPLETE

    def failure_lines(self) -> list[str]:
        """A failed build, one "build: <node>: <status>: <message>" line per failing node."""
        return [f"build: {f['node']}: {f['status']}: {f['message']}" for f in self.build.failures]

    def failure(self) -> MorphlakeError:
        """A failed build as one error: the failing nodes (or the build's error), its run record and dbt's log."""
        details = "; ".join(f"{f['node']}: {f['message']}" for f in self.build.failures)
        log_file = self.build.record.get("dbt_log")
        return MorphlakeError(
            f"dbt build failed: {details or self.build.record.get('error')}",
            f"see {self.lake.runs_dir / (self.build.run_id + '.json')}"
            + (f" and dbt's log {log_file}" if log_file else ""),
        )


def run_pipeline(pipeline: Pipeline, *, echo: Callable[[str], None], parent: LakeRun | None = None) -> PipelineResult:
    """Run ingest, embed (given an encoder) and build in order, echoing each step's summary; the caller reports a
    failed build (PipelineResult). A parent run (build06's) times each step and takes its run id and skipped items."""
    p, say = pipeline, pipeline.summaries
    ingested = _step(p.ingest, "ingest", parent=parent, key="ingest_run")
    echo(say.ingest(ingested, p.lake))
    codes = [ingested.exit_code]
    if p.encoder is not None:
        encoder = p.encoder
        embedded = _step(lambda: p.embed(encoder), "embed", parent=parent, key="embed_run")
        if parent is not None:
            parent.record.set("encoder", embedded.record.get("encoder"))
            parent.record.count("embedded", embedded.record["counts"].get("embedded", 0))
        echo(say.embed(embedded, encoder))
        codes.append(embedded.exit_code)
    built = _step(p.build, "dbt", parent=parent, key="build_run")
    return PipelineResult(exit_code=max(codes + [built.exit_code]), build=built, lake=p.lake)


def _step(run: Callable[[], RunResult], phase: str, *, parent: LakeRun | None, key: str) -> RunResult:
    """One step; a parent run times it as `phase`, takes its skipped items and records its run id as `key`."""
    with parent.record.timed(phase) if parent is not None else nullcontext():
        result = run()
    if parent is not None:
        parent.skip(result.skipped)
        parent.record.set(key, result.run_id)
    return result
