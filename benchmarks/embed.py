"""Embed throughput: the morphlake pipeline against its shared-core bound and the legacy PyTorch path.

Run from the repository root:  .venv/bin/python -m benchmarks.embed [--snips 1024] [--rounds 5]

On the same demo-generator snips, in interleaved rounds (medians printed): one-core decode and inference
seconds per image, the bound they imply when decode and inference share the cores (cores / summed
seconds per image), the pipeline's images/s and share of that bound, the legacy path (PyTorch eager,
DataLoader 2 workers, batch 64, no torch.no_grad, same weights), and the options beyond the legacy
path with their drift. Then batch-size and worker/thread sweeps.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

from benchmarks.common import SNIP_KINDS, Rounds, make_snips, one_core_seconds, seconds, table
from morphlake.embed.architecture import EncoderSpec
from morphlake.embed.build import demo_encoder_weights, write_demo_encoder
from morphlake.embed.errors import EmbedError
from morphlake.embed.model import CPU, Encoder
from morphlake.embed.precision import derive_encoder, drift
from morphlake.embed.reader import decode_batches, decode_chunk
from morphlake.embed.runner import embed_snips

SEED = 0


def side_by_side(work, copies: int) -> float:
    """How many times one copy's throughput `copies` copies of `work` reach when run at once."""
    alone = seconds(work)
    pool = ThreadPoolExecutor(copies)
    together = seconds(lambda: list(pool.map(lambda _: work(), range(copies))))
    pool.shutdown()
    return copies * alone / together


def z_mu(refs, encoder, batch_size, workers, reduced=False) -> np.ndarray:
    return np.concatenate([b.z_mu for b in embed_snips(refs, encoder, batch_size, workers=workers, reduced=reduced)])


def per_kind_costs(folder: Path, encoder: Encoder, count: int, batch_size: int) -> list[list]:
    """Per snip kind: mean file size, and one core's decode and inference milliseconds per image."""
    rows = []
    for kind in SNIP_KINDS:
        refs = make_snips(folder / "kinds", count, seed=1, kind=kind)
        size = sum(Path(r.path).stat().st_size for r in refs) / len(refs) / 1024
        one_core_seconds(refs, encoder, batch_size)  # warm the page cache and onnxruntime
        decode, infer = (s * 1e3 for s in one_core_seconds(refs, encoder, batch_size))
        rows.append([kind, f"{size:.0f}", f"{decode:.2f}", f"{infer:.2f}", f"{decode / (decode + infer):.0%}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (the GPU run of benchmarks/README.md)")
    parser.add_argument("--no-legacy", action="store_true", help="skip the PyTorch path (no `export` extra)")
    parser.add_argument(
        "--kind",
        choices=SNIP_KINDS,
        default="noisy-jpeg",
        help="the snips the rounds run on (the per-kind table measures every kind)",
    )
    args = parser.parse_args()
    cores, bs = os.cpu_count() or 1, args.batch_size
    try:
        from benchmarks.legacy_embed import legacy_embed, legacy_encoder

        legacy = None if args.no_legacy else legacy_encoder(demo_encoder_weights(EncoderSpec(), SEED))
    except EmbedError:  # PyTorch missing: embed.export says so
        legacy = None
        print("PyTorch is not installed (the `export` extra): the legacy path is skipped")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        refs = make_snips(folder, args.snips, kind=args.kind)
        paths = [r.path for r in refs]
        n = len(refs)
        fp32 = write_demo_encoder(folder / "encoder.onnx", "bench", seed=SEED)
        kinds = per_kind_costs(folder, Encoder(fp32, device=args.device), min(n, 256), args.batch_size)
        calibration = decode_chunk(refs[:128], 128).pixels
        int8, fp16 = folder / "int8.onnx", folder / "fp16.onnx"
        onnx.save(derive_encoder(fp32, "int8", calibration=calibration, calibration_note="128 benchmark snips"), int8)
        onnx.save(derive_encoder(fp32, "fp16"), fp16)
        one = Encoder(fp32, device=args.device)  # 1 intra-op thread: the pipeline's encoder
        allcores = Encoder(fp32, device=args.device, threads=0)  # onnxruntime's own parallelism
        quant = Encoder(int8, device=args.device)
        half = Encoder(fp16, device=args.device)
        provider = one.provider
        pixels = next(decode_batches(refs, bs, cores)).pixels
        batches = -(-n // bs)

        variants = {  # name -> (encoder, reduced decode)
            "pipeline, legacy-faithful": (one, False),
            "pipeline --decode reduced": (one, True),
            f"pipeline --precision {'fp16' if provider != CPU else 'int8'}": (
                half if provider != CPU else quant,
                False,
            ),
            f"pipeline --decode reduced --precision {'fp16' if provider != CPU else 'int8'}": (
                half if provider != CPU else quant,
                True,
            ),
        }
        reference = z_mu(refs, one, bs, cores)  # warms the page cache and onnxruntime too
        drifts = {name: drift(reference, z_mu(refs, enc, bs, cores, red)) for name, (enc, red) in variants.items()}
        drifts["pipeline --precision fp16 (CPU)"] = drift(reference, z_mu(refs, half, bs, cores))
        if legacy is not None:
            legacy_z = legacy_embed(legacy, paths[:256])
            drifts["legacy PyTorch path (first 256)"] = drift(reference[: len(legacy_z)], legacy_z)

        r = Rounds()
        for _ in range(args.rounds):
            decode_1, infer_1 = one_core_seconds(refs, one, bs)
            r.add("decode_1", decode_1)
            r.add("infer_1", infer_1)
            if provider == CPU:
                r.add("bound", cores / (decode_1 + infer_1))
                # The bound assumes `cores` copies of the work run `cores` times as fast as one; say how
                # far this machine is from that (vCPUs often share physical cores, caches and memory).
                r.add("scale_decode", side_by_side(lambda: decode_chunk(refs[:512], 512), cores))
                r.add("scale_infer", side_by_side(lambda: [one.run(pixels) for _ in range(8)], cores))
            r.add("decode only (all cores)", n / seconds(lambda: list(decode_batches(refs, bs, cores))))
            r.add(
                "model only (all cores)", batches * bs / seconds(lambda: [allcores.run(pixels) for _ in range(batches)])
            )
            if provider != CPU:
                r.add("bound", min(r.values["decode only (all cores)"][-1], r.values["model only (all cores)"][-1]))
            for name, (enc, red) in variants.items():
                rate = r.add(name, n / seconds(lambda: list(embed_snips(refs, enc, bs, workers=cores, reduced=red))))
                if enc is one and not red:
                    r.add(f"share:{name}", rate / r.values["bound"][-1])

            if legacy is not None:
                r.add("legacy PyTorch path", n / seconds(lambda: legacy_embed(legacy, paths)))

        sweep_batch = {
            b: n / seconds(lambda: list(embed_snips(refs, one, b, workers=cores))) for b in (8, 16, 32, 64, 128)
        }
        sweep_workers = {}
        for threads in (1, 2):
            enc = one if threads == 1 else Encoder(fp32, device=args.device, threads=threads)
            for workers in (1, 2, 3, 4):
                sweep_workers[(workers, threads)] = n / seconds(
                    lambda: list(embed_snips(refs, enc, bs, workers=workers))
                )

    bound = r.median("bound")
    base = r.median("legacy PyTorch path") if legacy is not None else None
    rows = [
        [
            "shared-core bound" if provider == CPU else "bound (slower of decode, model)",
            bound,
            r.spread("bound"),
            "",
            bound / base if base else "-",
        ]
    ]

    for name in ["decode only (all cores)", "model only (all cores)", *variants, "legacy PyTorch path"]:
        if name not in r.values:
            continue
        share = f"{r.median(f'share:{name}'):.0%}" if f"share:{name}" in r.values else ""
        rows.append([name, r.median(name), r.spread(name), share, r.median(name) / base if base else "-"])
    print(
        f"embed benchmark: {n} snips 576x256 {args.kind}, batch {bs}, {cores} cores, {provider}, "
        f"median of {args.rounds} rounds"
    )
    print(
        f"  per image on one core: decode {r.median('decode_1') * 1e3:.2f} ms, "
        f"inference {r.median('infer_1') * 1e3:.2f} ms"
    )
    if provider == CPU:
        print(
            f"  machine: {cores} copies side by side reach {r.median('scale_decode'):.2f}x one copy's decode and "
            f"{r.median('scale_infer'):.2f}x its inference throughput (the bound assumes {cores:.2f}x)"
        )
    print(
        table(
            "per snip kind (one core, legacy decode)",
            ["kind", "KB/file", "decode ms", "infer ms", "decode share"],
            kinds,
        )
    )
    print(table("", ["", "images/s", "range", "of bound", "x legacy"], rows))
    faithful = next(iter(variants))
    if provider == CPU:
        print(
            f"  {faithful}: {r.median(f'share:{faithful}'):.0%} of the shared-core bound (median of per-round shares)"
        )
    print(
        table(
            "\ndrift from the legacy-faithful pipeline (z_mu, all benchmark snips)",
            ["", "max |dz|", "min cosine"],
            [[name, f"{a:.2e}", f"{c:.6f}"] for name, (a, c) in drifts.items()],
        )
    )
    print(
        table(
            f"\nbatch-size sweep ({cores} workers, 1 thread each)",
            ["batch", "images/s"],
            [[str(b), v] for b, v in sweep_batch.items()],
        )
    )
    print(
        table(
            f"\nworker / thread sweep (batch {bs})",
            ["workers x intra-op threads", "images/s"],
            [[f"{w} x {t}", v] for (w, t), v in sweep_workers.items()],
        )
    )


if __name__ == "__main__":
    main()
