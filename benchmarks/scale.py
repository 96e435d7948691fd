"""Embed at two sizes (2k and 20k snips): time per image and peak memory of the real `morphlake embed`.

Run from the repository root:  .venv/bin/python -m benchmarks.scale [--small 2000] [--large 20000]

One data root holds `--large` demo-generator JPEG snips in experiments of `--per-experiment` (1,000); a lake is ingested
with the first `--small` of them and another with all. `morphlake embed` runs on each in its own
process (peak resident memory from wait4 rusage). Linear time means the same time per image; flat
memory means the two peaks differ by little (the target: within 100 MB).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import PERTURBATIONS, peak_of, table
from benchmarks.legacy_root import df02_frame, write_df02
from morphlake import DEFAULT_MODEL_NAME
from morphlake.demo.images import embryo_snip
from morphlake.embed.build import write_demo_encoder
from morphlake.ingest.ledger import SNIP_SUBDIR


def write_snips(root: Path, snips: int, per_experiment: int) -> list[str]:
    """df02 and one JPEG per row; returns the experiments in order."""
    rng = np.random.default_rng(0)
    df02 = df02_frame(snips, rng, per_experiment)
    write_df02(root, df02)
    for i, (snip, exp) in enumerate(df02.select("snip_id", "experiment_date").iter_rows()):
        path = root / SNIP_SUBDIR / exp / f"{snip}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        embryo_snip(rng, 24 + i % 40, PERTURBATIONS[i % 3]).save(path, quality=92)
    return df02["experiment_date"].unique(maintain_order=True).to_list()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--per-experiment", type=int, default=1_000, help="snips per experiment (divides both sizes)")
    args = parser.parse_args()
    morphlake = str(Path(sys.executable).parent / "morphlake")
    results = {}
    with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-scale-") as tmp:
        root = Path(tmp) / "root"
        experiments = write_snips(root, args.large, args.per_experiment)
        encoder = write_demo_encoder(Path(tmp) / "encoder.onnx", DEFAULT_MODEL_NAME)
        for n in (args.small, args.large):
            lake = Path(tmp) / f"lake-{n}"
            chosen = experiments[: -(-n // args.per_experiment)]
            peak_of(
                [
                    morphlake,
                    "ingest",
                    "--root",
                    str(root),
                    "--data-root",
                    str(root),
                    "--lake",
                    str(lake),
                    "--experiments",
                    *chosen,
                ]
            )
            wall, mib, _ = peak_of([morphlake, "embed", "--model", str(encoder), "--lake", str(lake)])
            record = json.loads(max((lake / "runs").glob("*-embed-*.json")).read_text())
            assert record["counts"]["embedded"] == n, record["counts"]
            results[n] = (wall, 1e3 / record["counts"]["images_per_s"], mib)
    rows = [[f"{n:,} snips", wall, wall / n * 1e3, loop_ms, mib] for n, (wall, loop_ms, mib) in results.items()]
    print(
        table(
            "scale benchmark: `morphlake embed` (demo encoder, CPU), each size in its own process",
            ["", "wall s", "ms / image", "embed loop ms / image", "peak MiB"],
            rows,
        )
    )
    (_, small_ms, small_mb), (_, large_ms, large_mb) = results[args.small], results[args.large]
    print(
        f"  embed loop time per image, large / small: {large_ms / small_ms:.2f} (1.00 = linear; the wall "
        f"time also holds a fixed start-up: imports, encoder load, plan)"
    )
    print(f"  peak memory, large - small: {large_mb - small_mb:+.0f} MiB (target: within 100 MB)")


if __name__ == "__main__":
    main()
