"""The whole pipeline in order (ingest -> embed -> dbt build), as `morphlake demo` runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from morphlake.lake.layout import Lake
from morphlake.report.summary import describe_df03
from morphlake.steps.lifecycle import EXIT_FAILED
from morphlake.steps.pipeline import Pipeline, run_pipeline


def run_demo_pipeline(lake: Lake, root: Path, model_name: str, *, encoder: Path, echo: Callable[[str], None]) -> int:
    """Run every step on a demo root; returns the worst exit code."""
    pipeline = Pipeline(lake=lake, root=root, data_root=root, model_name=model_name, encoder=encoder)
    done = run_pipeline(pipeline, echo=echo)
    if done.build_failed:
        for line in done.failure_lines():
            echo(line)
        return EXIT_FAILED
    echo(describe_df03(lake))
    return done.exit_code
