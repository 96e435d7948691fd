"""`morphlake embed` with the local engine and the ray engine on one node, side by side: img/s and driver memory.

Run from the repository root:  .venv/bin/python -m benchmarks.engines [--small 2000] [--large 20000] [--rounds 2]

A data root holds `--large` noisy brightfield JPEGs (benchmarks.common.make_snips; a pool of distinct snips is
linked under every snip id, so the decode cost is the real one) in experiments of `--per-experiment`; one lake
is ingested with the first `--small` snips and one with all. Each round embeds each size with each engine, in
turn, into a fresh copy of the ingested lake: the local engine in its own process; the ray engine in its own
driver process that joins a Ray instance started once beside it (sized to the machine), so the driver's peak
memory (wait4 rusage) is the driver's alone. (The Ray instance lives in a helper process, not in this one: a
child's ru_maxrss starts from its parent's resident size at fork.) img/s is the run record's (the embed loop:
for ray it includes the actors' start); the ratios are taken within each round, then the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import peak_of, table
from benchmarks.legacy_root import write_snip_root
from morphlake import DEFAULT_MODEL_NAME
from morphlake.embed.build import write_demo_encoder

HEAD = """
import logging, sys, ray
ray.init(address="local", num_cpus=int(sys.argv[1]), include_dashboard=False, log_to_driver=False,
         logging_level=logging.ERROR)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
ray.shutdown()
"""


@contextmanager
def ray_instance(cpus: int, address: str | None = None):
    """A local Ray instance in a helper process; yields its address, and stops it at the end."""
    if address:
        yield address
        return
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD, str(cpus)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield head.stdout.readline().strip()
    finally:
        head.stdin.close()
        head.wait(timeout=60)


def embed_run(morphlake: str, lake: Path, encoder: Path, extra: list[str]) -> dict:
    """One `morphlake embed` in a child process: its record's img/s, the wall time and the child's peak RSS."""
    args = [morphlake, "-q", "embed", "--model", str(encoder), "--lake", str(lake), *extra]
    wall, mib, _ = peak_of(args, env={"RAY_AUTH_MODE": "token"})  # a local instance's default: a token in ~/.ray
    record = json.loads(max((lake / "runs").glob("*-embed-*.json")).read_text())
    n = record["counts"]["embedded"]
    return {
        "img_s": record["counts"]["images_per_s"],
        "wall": wall,
        "mib": mib,
        "engine": record["engine"],
        "write_us": record["embed_timings_s"]["write_s"] / n * 1e6,  # the driver's side: rows -> partitions
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--per-experiment", type=int, default=1_000, help="snips per experiment (divides both sizes)")
    parser.add_argument("--pool", type=int, default=2_000, help="distinct noisy snips behind the snip ids")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ray-address", help="join this Ray instance instead of starting one (the tests do)")
    args = parser.parse_args()
    morphlake = str(Path(sys.executable).parent / "morphlake")
    cpus = os.cpu_count() or 1
    runs: dict[tuple[int, str], list[dict]] = {}
    with ray_instance(cpus, args.ray_address) as address:
        engines = {"local": [], "ray": ["--engine", "ray", "--ray-address", address]}
        with tempfile.TemporaryDirectory(dir=Path.cwd(), prefix=".bench-engines-") as tmp:
            root = Path(tmp) / "root"
            experiments = write_snip_root(root, args.large, per_experiment=args.per_experiment, pool=args.pool)
            encoder = write_demo_encoder(Path(tmp) / "encoder.onnx", DEFAULT_MODEL_NAME)
            ingested = {}
            for n in (args.small, args.large):
                ingested[n] = Path(tmp) / f"ingested-{n}"
                chosen = experiments[: -(-n // args.per_experiment)]
                peak_of(
                    [morphlake, "-q", "ingest", "--root", str(root), "--data-root", str(root)]
                    + ["--lake", str(ingested[n]), "--experiments", *chosen]
                )
            for _ in range(args.rounds):
                for n in (args.small, args.large):
                    for engine, extra in engines.items():
                        lake = Path(tmp) / "lake"
                        shutil.rmtree(lake, ignore_errors=True)
                        shutil.copytree(ingested[n], lake)
                        runs.setdefault((n, engine), []).append(embed_run(morphlake, lake, encoder, extra))
    report(runs, args, cpus)


def report(runs: dict[tuple[int, str], list[dict]], args, cpus: int) -> None:
    med = lambda n, e, k: statistics.median(r[k] for r in runs[(n, e)])  # noqa: E731
    rows = []
    for n in (args.small, args.large):
        ratios = [r["img_s"] / l["img_s"] for l, r in zip(runs[(n, "local")], runs[(n, "ray")])]  # noqa: E741
        rows.append(
            [
                f"{n:,} snips",
                med(n, "local", "img_s"),
                med(n, "ray", "img_s"),
                statistics.median(ratios),
                med(n, "local", "wall"),
                med(n, "ray", "wall"),
                med(n, "local", "mib"),
                med(n, "ray", "mib"),
            ]
        )
    engine = runs[(args.large, "ray")][-1]["engine"]
    print(
        table(
            f"engines benchmark: `morphlake embed` on noisy JPEGs, demo encoder, one node ({cpus} CPUs); "
            f"ray: {engine['actors']} actor(s) on {engine['device']}, {args.rounds} round(s), medians",
            ["", "local img/s", "ray img/s", "ray / local", "local wall s", "ray wall s", "local MiB", "ray MiB"],
            rows,
        )
    )
    ray_small, ray_large = med(args.small, "ray", "mib"), med(args.large, "ray", "mib")
    print(f"  ray / local img/s at {args.large:,} snips: {rows[-1][3]:.2f} (target: >= 0.8)")
    print(f"  ray driver peak memory, {args.large:,} - {args.small:,} snips: {ray_large - ray_small:+.0f} MiB (flat)")
    write_us = med(args.large, "ray", "write_us")
    print(
        f"  the driver's lake writer (batches -> partitions -> staged Parquet) at {args.large:,} snips: "
        f"{write_us:.0f} us per image, one core: a bound of {1e6 / write_us:,.0f} img/s for any cluster"
    )


if __name__ == "__main__":
    main()
