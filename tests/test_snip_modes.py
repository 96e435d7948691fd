"""Snips as the legacy code opens them: colour modes are converted to grayscale, high bit depths are refused."""

from __future__ import annotations

import io
import json

import images
import numpy as np
import polars as pl
import pytest
from PIL import Image

from morphlake.demo.images import embryo_snip
from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH
from morphlake.embed.model import Encoder
from morphlake.embed.reader import SnipProblem, decode_snip, fingerprint
from morphlake.ingest.ledger import SNIP_SUBDIR

EXP = "20250305_24hpf_lmx1b"  # the experiment the legacy store does not cover: all its snips are embedded


def legacy_pixels(data: bytes) -> np.ndarray:
    """The legacy preprocessing, verbatim."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("L").resize((INPUT_WIDTH, INPUT_HEIGHT), Image.BILINEAR))


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def picture(seed: int = 0) -> Image.Image:
    return embryo_snip(np.random.default_rng(seed), 30.0, "wt")


def colour_picture() -> Image.Image:
    """Real colour (not grey stored as RGB), so a wrong grey formula would show."""
    gray = np.asarray(picture())
    return Image.fromarray(np.stack([gray, np.roll(gray, 40, axis=0), 255 - gray], axis=-1), "RGB")


COLOUR_SNIPS = {
    "RGB JPEG": lambda: encoded(colour_picture(), "JPEG", quality=90),
    "RGB JPEG of a grey picture": lambda: encoded(picture().convert("RGB"), "JPEG"),
    "CMYK JPEG": lambda: encoded(colour_picture().convert("CMYK"), "JPEG"),
    "RGB PNG": lambda: encoded(colour_picture(), "PNG"),
    "RGBA PNG": lambda: encoded(colour_picture().convert("RGBA"), "PNG"),
    "P PNG": lambda: encoded(colour_picture().convert("P"), "PNG"),
    "P PNG with transparency": lambda: encoded(colour_picture().convert("P"), "PNG", transparency=3),
    "LA PNG": lambda: encoded(picture().convert("LA"), "PNG"),
    "1 PNG": lambda: encoded(picture().convert("1"), "PNG"),
    "half-size RGB JPEG": lambda: encoded(colour_picture().resize((128, 288)), "JPEG"),
}


@pytest.mark.parametrize("kind", sorted(COLOUR_SNIPS))
def test_colour_snip_decodes_like_the_legacy_pipeline(kind):
    data = COLOUR_SNIPS[kind]()
    assert Image.open(io.BytesIO(data)).mode != "L"
    pixels = decode_snip(data)
    assert pixels.dtype == np.uint8 and pixels.shape == (INPUT_HEIGHT, INPUT_WIDTH)
    assert np.array_equal(pixels, legacy_pixels(data))


@pytest.mark.parametrize("maker", [images.rgb_jpeg, images.cmyk_jpeg])
def test_colour_snip_files_decode_like_the_legacy_pipeline(tmp_path, maker):
    data = maker(tmp_path / "snip.jpg").read_bytes()
    assert np.array_equal(decode_snip(data), legacy_pixels(data))


def test_reduced_decode_keeps_the_legacy_path_for_colour_jpegs():
    # draft("L") would make libjpeg return its Y channel, which differs from Pillow's convert("L").
    data = encoded(
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (576, 256, 3), np.uint8)),
        "JPEG",
        quality=50,
        subsampling=0,
    )
    assert np.array_equal(decode_snip(data, reduced=True), legacy_pixels(data))


def test_reduced_decode_still_scales_grey_jpegs():
    data = encoded(picture(), "JPEG", quality=90)
    reduced = decode_snip(data, reduced=True).astype(int)
    assert np.abs(reduced - legacy_pixels(data)).max() <= 8  # DCT scaling: close, not bit-identical


def test_grey_snip_is_unchanged():
    data = encoded(picture(), "PNG")
    assert np.array_equal(decode_snip(data), legacy_pixels(data))


def sixteen_bit_png() -> bytes:
    return encoded(Image.fromarray(np.asarray(picture()).astype(np.uint16) * 257), "PNG")


def tiff(array: np.ndarray, mode: str | None = None) -> bytes:
    # Pillow cannot write 32-bit or float PNGs, so those modes come as TIFF (the decoder does not care).
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    return encoded(image, "TIFF")


REFUSED = {
    "I;16 PNG": (sixteen_bit_png, "image mode 'I;16' (16-bit PNG): converting to 8-bit grayscale would clip it"),
    "I;16B TIFF": (lambda: encoded(Image.new("I;16B", (256, 576), 300), "TIFF"), "image mode 'I;16B' (16-bit TIFF)"),
    "I TIFF": (lambda: tiff(np.full((576, 256), 70000, np.int32)), "image mode 'I' (32-bit integer TIFF)"),
    "F TIFF": (lambda: tiff(np.full((576, 256), 0.5, np.float32)), "image mode 'F' (32-bit float TIFF)"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_high_bit_depth_snip_is_refused_with_a_fix(kind):
    make, message = REFUSED[kind]
    with pytest.raises(SnipProblem) as problem:
        decode_snip(make())
    assert message in str(problem.value) and "save the snip as 8-bit grayscale" in str(problem.value)


def ledger(lake) -> pl.DataFrame:
    return pl.read_parquet(lake / "raw" / "snips" / "**" / "*.parquet", hive_partitioning=False)


def test_rgb_snip_is_embedded_and_16_bit_snip_is_refused(cli, root, lake, encoder_path):
    folder = root / SNIP_SUBDIR / EXP
    rgb_snip, deep_snip = f"{EXP}_A03_e01_t0001", f"{EXP}_A10_e02_t0002"
    rgb_path = folder / f"{rgb_snip}.jpg"
    Image.open(rgb_path).convert("RGB").save(rgb_path, "JPEG", quality=95)  # the same picture, as RGB
    deep_path = folder / f"{deep_snip}.png"
    grey = np.asarray(Image.open(folder / f"{deep_snip}.jpg"))
    Image.fromarray(grey.astype(np.uint16) * 257).save(deep_path, "PNG")
    (folder / f"{deep_snip}.jpg").unlink()

    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    modes = dict(ledger(lake).select("snip_id", "mode").iter_rows())
    assert (modes[rgb_snip], modes[deep_snip]) == ("RGB", "I;16")

    strict = cli("embed", "--model", encoder_path, "--lake", lake)
    assert strict.exit_code == 1
    assert f"cannot embed snip {deep_snip} ({deep_path})" in strict.stderr
    assert "image mode 'I;16' (16-bit PNG)" in strict.stderr and "--allow-partial" in strict.stderr

    partial = cli("embed", "--model", encoder_path, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2, partial.output
    skipped = json.loads(next((lake / "runs").glob("*-embed-*.partial.json")).read_text())["skipped"]
    assert [(s["item"], s["where"]) for s in skipped] == [(deep_snip, str(deep_path))]

    frame = pl.read_parquet(lake / "embeddings" / "**" / "*.parquet", hive_partitioning=False)
    assert deep_snip not in frame["snip_id"].to_list()
    row = frame.filter(pl.col("snip_id") == rgb_snip)
    assert row.height == 1 and row["source"][0] == "onnx"
    mu, logvar = Encoder(encoder_path, "cpu").run(legacy_pixels(rgb_path.read_bytes())[None, None])
    assert np.max(np.abs(row.select(f"z_mu_{i:02d}" for i in range(100)).to_numpy() - mu)) <= 1e-5
    assert np.max(np.abs(row.select(f"z_sigma_{i:02d}" for i in range(100)).to_numpy() - logvar)) <= 1e-5
    assert row["image_fingerprint"][0] == fingerprint(rgb_path.read_bytes())  # the file's bytes, not its pixels
