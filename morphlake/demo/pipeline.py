"""The whole pipeline in order (ingest -> embed -> dbt build), as `morphlake demo` runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from morphlake.lake.layout import Lake
from morphlake.report.summary import describe_df03
from morphlake.steps.build.step import run_build
from morphlake.steps.embed.step import run_embed
from morphlake.steps.ingest_step import run_ingest
from morphlake.steps.lifecycle import EXIT_COMPLETE, EXIT_FAILED


def run_demo_pipeline(lake: Lake, root: Path, model_name: str, *, encoder: Path, echo: Callable[[str], None]) -> int:
    """Run every step on a demo root; returns the worst exit code."""
    codes = []
    result = run_ingest(lake, root, root, model_name=model_name)
    codes.append(result.exit_code)
    counts = result.record["counts"]
    echo(
        f"ingest: {counts.get('df02_rows')} df02 rows, {counts.get('snips')} snips in the ledger, "
        f"{counts.get('latent_rows')} legacy latent rows -> {lake.root}"
    )
    result = run_embed(lake, encoder)
    codes.append(result.exit_code)
    rec = result.record
    echo(
        f"embed: {rec['counts'].get('embedded', 0)} snip(s) embedded on {rec['provider']['used']} "
        f"({rec['encoder']['weights']} weights)"
    )
    built = run_build(lake, model_name)
    codes.append(built.exit_code)
    if built.exit_code == EXIT_COMPLETE:
        echo(describe_df03(lake))
    else:
        for failure in built.failures:
            echo(f"build: {failure['node']}: {failure['status']}: {failure['message']}")
        return EXIT_FAILED
    return max(codes) if codes else EXIT_COMPLETE
