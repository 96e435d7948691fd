"""df03 at scale: morphlake (lake + dbt) against the legacy pandas merge + to_csv, wall time and peak memory.

Run from the repository root:  .venv/bin/python -m benchmarks.df03 [--snips 100000 1000000]

For each size, a legacy-shaped data root (df02 CSV and a flat 100-dim latent store, one CSV per
experiment of 10,000 snips) is written to a temporary folder. The legacy way reads both with pandas,
merges and writes embryo_metadata_df03.csv; morphlake's `ingest` brings the same files into a lake
once, and `morphlake build` (dbt: views, tests, df03 Parquet export) builds df03 from it. Each runs
in its own process, so the peak resident memory reported is that process's own (wait4 rusage).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import duckdb

from benchmarks.common import peak_of, table
from benchmarks.legacy_root import DIM, PER_EXPERIMENT, write_data_root
from morphlake import DEFAULT_MODEL_NAME
from morphlake.ingest.latents import latent_store_dir
from morphlake.lake.data_root import DF02_RELPATH


def node_seconds(lake: Path, unique_id: str) -> float:
    """Execution time of one dbt node in the last build (dbt's run_results.json)."""
    results = json.loads((lake / ".dbt" / "target" / "run_results.json").read_text())["results"]
    return next(r["execution_time"] for r in results if r["unique_id"] == unique_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    morphlake = str(Path(sys.executable).parent / "morphlake")
    rows = []
    for n in args.snips:
        with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-df03-") as tmp:
            root, lake = Path(tmp) / "root", Path(tmp) / "lake"
            df02_rows = write_data_root(root, n)
            legacy_s, legacy_mb, out = peak_of(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.legacy_df03",
                    str(root / DF02_RELPATH),
                    str(latent_store_dir(root, DEFAULT_MODEL_NAME)),
                    str(Path(tmp) / "df03.csv"),
                ]
            )
            assert int(out.split()[-1]) == df02_rows, out
            ingest_s, ingest_mb, _ = peak_of(
                [morphlake, "ingest", "--root", str(root), "--data-root", str(root), "--lake", str(lake)]
            )
            build_s, build_mb, _ = peak_of([morphlake, "build", "--lake", str(lake)])
            export_s = node_seconds(lake, "model.morphlake.df03_export")
            rebuild_s, rebuild_mb, _ = peak_of([morphlake, "build", "--lake", str(lake)])
            exported = duckdb.sql(f"select count(*) from read_parquet('{lake}/exports/df03/*/*.parquet')").fetchall()[
                0
            ][0]
            assert exported == df02_rows, (exported, df02_rows)
        rows += [
            [f"{n:,} snips: pandas read_csv + merge + to_csv", legacy_s, legacy_mb, 1.0, 1.0],
            [
                f"{n:,} snips: morphlake build (dbt, from the lake)",
                build_s,
                build_mb,
                legacy_s / build_s,
                build_mb / legacy_mb,
            ],
            [f"{n:,} snips:   of which df03 Parquet written", export_s, "", legacy_s / export_s, ""],
            [
                f"{n:,} snips: morphlake build again (dbt parse cached)",
                rebuild_s,
                rebuild_mb,
                legacy_s / rebuild_s,
                rebuild_mb / legacy_mb,
            ],
            [
                f"{n:,} snips: morphlake ingest (once, CSV -> lake)",
                ingest_s,
                ingest_mb,
                legacy_s / ingest_s,
                ingest_mb / legacy_mb,
            ],
        ]
    print(
        table(
            f"df03 benchmark: {DIM} dims, {PER_EXPERIMENT:,} snips per experiment, 1 in 50 df02 rows unusable",
            ["", "wall s", "peak MiB", "x faster", "memory ratio"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
