"""df03 at scale: `morphlake build` against the legacy pandas merge + to_csv, full and incremental, time and memory.

Run from the repository root:  .venv/bin/python -m benchmarks.df03 [--snips 100000 1000000] [--demo-rounds 3]

For each size, a legacy-shaped data root (df02 CSV and a flat 100-dim latent store, one CSV per experiment of
10,000 snips) is written to a temporary folder. The legacy way reads both with pandas, merges and writes
embryo_metadata_df03.csv. morphlake ingests the same files once, then builds, in this order:

- the first build of the new lake (dbt compiles the project from scratch, every partition written);
- `build --full` (dbt again, with its parse cached; every partition written);
- a build after every experiment's df02 partition changed (every partition written; dbt not started);
- a build with no change (nothing written);
- a build after one new experiment of 10,000 snips was ingested (one partition written, the rest linked).

Each runs in its own process, so the peak resident memory reported is that process's own (wait4 rusage).
Then, on the demo: `morphlake build --full` and a no-change build against `python -c "import dbt.cli.main"`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from benchmarks.common import peak_of, table
from benchmarks.legacy_root import DIM, PER_EXPERIMENT, add_experiment, write_data_root
from morphlake import DEFAULT_MODEL_NAME
from morphlake.ingest.latents import latent_store_dir
from morphlake.lake.data_root import DF02_RELPATH

MORPHLAKE = str(Path(sys.executable).parent / "morphlake")


def last_build(lake: Path) -> dict:
    return json.loads(max((lake / "runs").glob("*-build-*.json")).read_text())


def exported_rows(lake: Path) -> int:
    with duckdb.connect() as con:
        return con.execute(f"select count(*) from read_parquet('{lake}/exports/df03/*/*.parquet')").fetchone()[0]


PHASES: dict[str, list[list]] = {}  # where each size's first build went: phase, seconds, peak MiB


def build(lake: Path, *flags: str, expect_mode: str) -> tuple[float, float]:
    wall, peak, _ = peak_of([MORPHLAKE, "-q", "build", "--lake", str(lake), *flags])
    mode = last_build(lake)["build"]["mode"]
    assert mode == expect_mode, (mode, expect_mode)
    return wall, peak


def phases(lake: Path, wall: float) -> list[list]:
    """The last build's phases from its run record (seconds and peak resident MiB each), and the rest of the wall
    time (Python's start, imports, the lake lock, the summary)."""
    record = last_build(lake)
    timings, peaks = record["timings_s"], record.get("peak_rss_mib", {})
    rows = [[phase, seconds, peaks.get(phase, "")] for phase, seconds in timings.items()]
    return rows + [["the rest (start-up, imports, lock, summary)", wall - sum(timings.values()), ""]]


def one_size(n: int) -> list[list]:
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-df03-") as tmp:
        root, lake = Path(tmp) / "root", Path(tmp) / "lake"
        df02_rows = write_data_root(root, n)
        legacy = [sys.executable, "-m", "benchmarks.legacy_df03", str(root / DF02_RELPATH)]
        legacy += [str(latent_store_dir(root, DEFAULT_MODEL_NAME)), str(Path(tmp) / "df03.csv")]
        legacy_s, legacy_mb, out = peak_of(legacy)
        assert int(out.split()[-1]) == df02_rows, out
        ingest = [MORPHLAKE, "-q", "ingest", "--root", str(root), "--data-root", str(root), "--lake", str(lake)]
        peak_of(ingest)
        first = build(lake, expect_mode="full")
        PHASES[f"{n:,} snips"] = phases(lake, first[0])
        full = build(lake, "--full", expect_mode="full")
        for part in (lake / "raw" / "df02").glob("*/*.parquet"):
            os.utime(part)  # every experiment's df02 partition changed
        changed = build(lake, expect_mode="incremental")
        assert exported_rows(lake) == df02_rows
        unchanged = build(lake, expect_mode="unchanged")
        add_experiment(root, -(-df02_rows // PER_EXPERIMENT) * PER_EXPERIMENT)  # the next experiment's first row
        peak_of(ingest)
        added = build(lake, expect_mode="incremental")
        assert list(last_build(lake)["build"]["rebuilt"].values()) == ["new in df02"]
        assert exported_rows(lake) == df02_rows + PER_EXPERIMENT
    label = f"{n:,} snips:"
    rows = [[f"{label} pandas read_csv + merge + to_csv", legacy_s, legacy_mb, 1.0, 1.0, ""]]
    for name, (wall, peak) in [
        ("first build of the lake (dbt compiles)", first),
        ("build --full (dbt, parse cached)", full),
        ("build, every experiment changed (no dbt)", changed),
    ]:
        rows.append([f"{label} morphlake {name}", wall, peak, legacy_s / wall, peak / legacy_mb, ""])
    for name, (wall, peak) in [("build, no change", unchanged), ("build, one new 10k experiment", added)]:
        rows.append([f"{label} morphlake {name}", wall, peak, legacy_s / wall, "", full[0] / wall])
    return rows


def demo_rows(rounds: int) -> list[list]:
    """The demo lake: a full build and a no-change build against importing dbt alone (medians of `rounds`)."""
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-demo-") as tmp:
        lake = Path(tmp) / "lake"
        subprocess.run(
            [MORPHLAKE, "-q", "demo", "--root", str(Path(tmp) / "root"), "--lake", str(lake)],
            check=True,
            capture_output=True,
        )
        times: dict[str, list[float]] = {"import": [], "full": [], "unchanged": []}
        for _ in range(rounds):  # interleaved, so the machine's drift hits all three alike
            times["import"].append(peak_of([sys.executable, "-c", "import dbt.cli.main"])[0])
            times["full"].append(build(lake, "--full", expect_mode="full")[0])
            for phase, seconds in last_build(lake)["timings_s"].items():
                if phase.startswith("dbt_"):
                    times.setdefault(phase, []).append(seconds)
            times["unchanged"].append(build(lake, expect_mode="unchanged")[0])
    median = {k: statistics.median(v) for k, v in times.items()}
    said = {
        "dbt_parse": "  of which dbt: import and parse the project (once)",
        "dbt_build": "  of which dbt: build everything but df03 (views, a table, data tests)",
        "dbt_df03": "  of which dbt: df03 over the new export and its tests",
    }
    return [
        ['python -c "import dbt.cli.main"', median["import"], 1.0],
        ["morphlake build --full", median["full"], median["full"] / median["import"]],
        *[[said.get(k, k), median[k], median[k] / median["import"]] for k in times if k.startswith("dbt_")],
        ["morphlake build, no change", median["unchanged"], median["unchanged"] / median["import"]],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--demo-rounds", type=int, default=3, help="0 skips the demo rows")
    args = parser.parse_args()
    rows = [row for n in args.snips for row in one_size(n)]
    print(
        table(
            f"df03 benchmark: {DIM} dims, {PER_EXPERIMENT:,} snips per experiment, 1 in 50 df02 rows unusable",
            ["", "wall s", "peak MiB", "x faster than pandas", "memory / pandas", "x faster than --full"],
            rows,
        )
    )
    for size, rows in PHASES.items():
        print()
        print(table(f"where the first build's time went, {size}", ["phase", "s", "peak MiB"], rows))
    if args.demo_rounds:
        print()
        header = ["", "wall s", "x the dbt import"]
        print(table(f"df03 on the demo (60 snips), medians of {args.demo_rounds}", header, demo_rows(args.demo_rounds)))


if __name__ == "__main__":
    main()
