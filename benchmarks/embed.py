"""Embed throughput: the reader -> encoder pipeline against decode-only and model-only, on the same snips.

Run:  .venv/bin/python benchmarks/embed.py [--snips 1024] [--batch-size 64]
Prints images/s for each, the shared-core bound they imply, and the pipeline's share of it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embed.build import write_demo_encoder  # noqa: E402
from embed.model import Encoder  # noqa: E402
from embed.reader import SnipRef, decode_batches, decode_snip  # noqa: E402
from embed.runner import embed_snips  # noqa: E402
from morphlake.demo_images import embryo_snip  # noqa: E402


def make_snips(folder: Path, count: int) -> list[SnipRef]:
    rng = np.random.default_rng(0)
    refs = []
    for i in range(count):
        path = folder / f"bench_A01_e{i // 100:02d}_t{i % 100:04d}.jpg"
        embryo_snip(rng, 24 + (i % 40), ["wt", "atf6", "tbxta"][i % 3]).save(path, quality=92)
        refs.append(SnipRef(path.stem, "bench", str(path)))
    return refs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        refs = make_snips(folder, args.snips)
        encoder = Encoder(write_demo_encoder(folder / "encoder.onnx", "bench"), device=args.device)
        single = Encoder(encoder.path, device=args.device, threads=1)
        n = len(refs)
        # Warm-up: page cache and onnxruntime's first-run allocations.
        list(decode_batches(refs[: args.batch_size], args.batch_size, 1))
        pixels = next(decode_batches(refs, args.batch_size, cores)).pixels
        encoder.run(pixels), single.run(pixels)

        decode_1 = timed(lambda: [decode_snip(Path(r.path).read_bytes()) for r in refs]) / n
        decode_par = n / timed(lambda: list(decode_batches(refs, args.batch_size, cores)))
        batches = -(-n // args.batch_size)
        infer_1 = timed(lambda: [single.run(pixels) for _ in range(batches)]) / (batches * args.batch_size)
        model_par = batches * args.batch_size / timed(lambda: [encoder.run(pixels) for _ in range(batches)])
        pipeline = n / timed(lambda: list(embed_snips(refs, encoder, args.batch_size)))
        bound = cores / (decode_1 + infer_1) if encoder.provider == "CPUExecutionProvider" else min(decode_par, model_par)

    rows = [
        ("decode only (all cores)", decode_par, decode_par / pipeline),
        ("model only (all cores)", model_par, model_par / pipeline),
        ("shared-core bound", bound, bound / pipeline),
        ("pipeline (decode || infer)", pipeline, 1.0),
    ]
    print(f"embed benchmark: {n} snips 576x256 JPEG, batch {args.batch_size}, {cores} cores, {encoder.provider}")
    print(f"  per image, one core: decode {decode_1 * 1e3:.2f} ms, inference {infer_1 * 1e3:.2f} ms")
    print(f"  {'':<28}{'images/s':>10}{'x pipeline':>12}")
    for name, rate, ratio in rows:
        print(f"  {name:<28}{rate:>10.1f}{ratio:>12.2f}")
    print(f"  pipeline share of the shared-core bound: {pipeline / bound:.0%}")


if __name__ == "__main__":
    main()
