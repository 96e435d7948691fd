"""Run the dbt CLI itself in dbt_project/ on a test lake, as a user of plain `dbt` would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def plain_dbt(lake: Path, *args: str) -> subprocess.CompletedProcess:
    """`dbt <args>` from the project folder on `lake` (MORPHLAKE_LAKE), its target and logs kept in the lake."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--target-path", str(lake / ".dbt-target")]
        + ["--log-path", str(lake / ".dbt-logs")],
        cwd=PROJECT,
        env={**os.environ, "MORPHLAKE_LAKE": str(lake)},
        capture_output=True,
        text=True,
        timeout=300,
    )
