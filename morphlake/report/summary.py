"""What `build` and `demo` print after a green dbt build: where df03 is, its coverage, and a query to try."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import duckdb

from morphlake.lake.layout import Lake


def command_name() -> str:
    """How to call morphlake again as this process was called: `morphlake` when that name finds this very script
    on PATH, else the path it was started by (e.g. `.venv/bin/morphlake`, where the venv is not activated)."""
    started = Path(sys.argv[0])
    if started.name != "morphlake":  # python -m morphlake.cli, a test runner: say the command's name
        return "morphlake"
    found = shutil.which("morphlake")
    return "morphlake" if found and Path(found).resolve() == started.resolve() else shlex.quote(str(started))


def coverage_text(part: int, whole: int) -> str:
    return f"{part}/{whole}" + (f" ({part / whole:.1%})" if whole else "")


def describe_df03(lake: Lake) -> str:
    with duckdb.connect(str(lake.warehouse), read_only=True) as con:
        rows = con.execute("select count(*) from df03").fetchall()[0][0]
        coverage = con.execute(
            "select experiment_date, df02_rows, df03_rows, usable_rows, embedded_rows from df03_coverage order by 1"
        ).fetchall()
    totals = [sum(r[i] for r in coverage) for i in range(1, 5)]
    lines = [
        f"df03: {rows} rows — view df03 in {lake.warehouse}; Parquet in {lake.df03_export}/",
        f"coverage: {coverage_text(totals[1], totals[0])} df02 rows have an embedding; "
        f"usable rows (use_embryo_flag): {coverage_text(totals[3], totals[2])}",
    ]
    lines += [
        f"  {exp:<32} {coverage_text(d03, d02):<22} usable {coverage_text(emb, use)}"
        for exp, d02, d03, use, emb in coverage
    ]
    command, lake_arg = command_name(), f" --lake {shlex.quote(str(lake.root))}"
    lines.append(f'try:  {command} sql{lake_arg} "select * from df03 limit 5"')
    lines.append(f"      {command} status{lake_arg}")
    lines.append(f"      {command} report{lake_arg} -o report.html   # coverage, embedding map, agreement, runs")
    return "\n".join(lines)
