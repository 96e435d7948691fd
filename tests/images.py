"""Generators for good and broken snip files (the bad-image corpus is made here, never committed)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from morphlake.demo.images import embryo_snip


def good_jpeg(path: Path, seed: int = 0) -> Path:
    embryo_snip(np.random.default_rng(seed), 30.0, "wt").save(path, "JPEG", quality=90)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    embryo_snip(np.random.default_rng(1), 30.0, "wt").save(buf, "JPEG")
    return _write(path, buf.getvalue()[: len(buf.getvalue()) // 3])


def zero_bytes(path: Path) -> Path:
    return _write(path, b"")


def text_file(path: Path) -> Path:
    return _write(path, b"this is not an image\n")


def png_named_jpg(path: Path) -> Path:
    embryo_snip(np.random.default_rng(2), 30.0, "wt").save(path, "PNG")
    return path


def png16(path: Path) -> Path:
    Image.fromarray(np.full((576, 256), 30000, np.uint16)).save(path, "PNG")
    return path


def rgb_jpeg(path: Path) -> Path:
    embryo_snip(np.random.default_rng(3), 30.0, "wt").convert("RGB").save(path, "JPEG")
    return path


def cmyk_jpeg(path: Path) -> Path:
    embryo_snip(np.random.default_rng(4), 30.0, "wt").convert("CMYK").save(path, "JPEG")
    return path


def wrong_dimensions(path: Path) -> Path:
    Image.new("L", (300, 300), 128).save(path, "JPEG")
    return path


def decompression_bomb(path: Path, width: int = 20000, height: int = 45000) -> Path:
    """A tiny PNG whose header claims width x height pixels (a 900-megapixel decode by default)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1), 0).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return _write(path, bytes(data))


# RGB and CMYK snips are not bad: they are converted to grayscale as legacy does (tests/test_snip_modes.py).
BAD_IMAGES = {
    "truncated": (truncated_jpeg, "damaged or truncated"),
    "png16": (png16, "mode 'I;16'"),
    "wrong_dimensions": (wrong_dimensions, "9:4 shape"),
    "bomb": (decompression_bomb, "oversized image"),
}
