"""Snip decoders side by side: one core's milliseconds per snip and their drift from the legacy preprocessing.

Run from the repository root:  .venv/bin/python -m benchmarks.decode [--snips 512] [--rounds 5]

On noisy brightfield JPEGs and PNGs (benchmarks.common.make_snips), each way of turning a 576x256 file into the
model's 288x128 grey input is timed on one core (file bytes already in memory, median of interleaved rounds)
and compared with the legacy path (Pillow open -> convert("L") -> BILINEAR resize): the largest and mean
grey-level difference and the smallest cosine of the demo encoder's z_mu. Decoders from libraries that are not
installed are listed as such (the bench extra has simplejpeg and pyspng; `pip install opencv-python-headless` adds
OpenCV).
"""

from __future__ import annotations

import argparse
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.common import Rounds, make_snips, seconds, table
from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH
from morphlake.embed.build import write_demo_encoder
from morphlake.embed.model import Encoder
from morphlake.embed.precision import drift
from morphlake.embed.reader import decode_snip

SIZE = (INPUT_WIDTH, INPUT_HEIGHT)
SMOOTHING = ImageFilter.Kernel((3, 3), np.outer([1, 6, 1], [1, 6, 1]).ravel().tolist(), 64)


def _resized(gray: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize(SIZE, Image.BILINEAR))


def _simplejpeg(scaled: bool) -> Callable[[bytes], np.ndarray]:
    import simplejpeg

    if scaled:  # libjpeg-turbo's DCT scaling straight to the model's size, as Pillow's draft
        return lambda data: simplejpeg.decode_jpeg(
            data, colorspace="GRAY", min_height=INPUT_HEIGHT, min_width=INPUT_WIDTH
        )[:, :, 0]
    return lambda data: _resized(simplejpeg.decode_jpeg(data, colorspace="GRAY")[:, :, 0])


def _pyspng() -> Callable[[bytes], np.ndarray]:
    import pyspng

    return lambda data: _resized(pyspng.load(data))


def _opencv() -> Callable[[bytes], np.ndarray]:
    import cv2

    cv2.setNumThreads(1)
    return lambda data: _resized(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))


def _draft_smoothed(data: bytes) -> np.ndarray:
    """Pillow's DCT-scaled decode, then a [1, 6, 1] smoothing per axis: the 2x2 box the DCT scaling amounts to,
    convolved with it, comes near BILINEAR's [1, 3, 3, 1] (and its noise gain)."""
    return np.asarray(Image.fromarray(decode_snip(data, True)).filter(SMOOTHING))


def _pillow_reduce(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L").reduce(2))


DECODERS: dict[str, dict[str, Callable[[], Callable[[bytes], np.ndarray]]]] = {
    "noisy-jpeg": {
        "Pillow, BILINEAR (legacy)": lambda: decode_snip,
        "Pillow draft, DCT 1/2 (--decode reduced)": lambda: lambda data: decode_snip(data, True),
        "Pillow draft, then [1,6,1] smoothing": lambda: _draft_smoothed,
        "Pillow, reduce(2) (2x2 box)": lambda: _pillow_reduce,
        "simplejpeg, Pillow BILINEAR": lambda: _simplejpeg(False),
        "simplejpeg, DCT 1/2": lambda: _simplejpeg(True),
        "OpenCV imdecode, Pillow BILINEAR": _opencv,
    },
    "noisy-png": {
        "Pillow, BILINEAR (legacy)": lambda: decode_snip,
        "Pillow, reduce(2) (2x2 box)": lambda: _pillow_reduce,
        "pyspng, Pillow BILINEAR": _pyspng,
        "OpenCV imdecode, Pillow BILINEAR": _opencv,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snips", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder(write_demo_encoder(Path(tmp) / "encoder.onnx", "bench"), device="cpu", threads=0)
        for kind, decoders in DECODERS.items():
            files = [Path(r.path).read_bytes() for r in make_snips(Path(tmp), args.snips, seed=2, kind=kind)]
            ready, missing = {}, []
            for name, make in decoders.items():
                try:
                    ready[name] = make()
                except ImportError as exc:
                    missing.append(f"{name} ({exc.name} not installed)")
            legacy = np.stack([decode_snip(f) for f in files])
            z_legacy = encoder.run(legacy[:, None])[0]
            r, rows = Rounds(), []
            for _ in range(args.rounds):
                for name, decode in ready.items():
                    r.add(name, seconds(lambda: [decode(f) for f in files]) / len(files) * 1e3)  # noqa: B023
            base = r.median(next(iter(ready)))
            for name, decode in ready.items():
                pixels = np.stack([decode(f) for f in files])
                diff = np.abs(pixels.astype(np.int16) - legacy)
                _, cosine = drift(z_legacy, encoder.run(pixels[:, None])[0])
                rows.append(
                    [name, r.median(name), f"{base / r.median(name):.2f}x", int(diff.max()), diff.mean(), cosine]
                )
            size = sum(map(len, files)) / len(files) / 1024
            print(
                table(
                    f"\n{kind}: {len(files)} snips, {size:.0f} KB each; one core, median of {args.rounds} rounds",
                    ["decoder", "ms / snip", "speed", "max |grey diff|", "mean |grey diff|", "min cosine z_mu"],
                    [[n, f"{t:.3f}", s, m, f"{a:.3f}", f"{c:.6f}"] for n, t, s, m, a, c in rows],
                )
            )
            for name in missing:
                print(f"  not measured: {name}")


if __name__ == "__main__":
    main()
