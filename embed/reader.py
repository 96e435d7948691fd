"""Decode snips with the legacy preprocessing, in parallel threads, into fixed-size uint8 batches."""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from typing import TypeVar

import numpy as np
from PIL import Image

from morphlake.common.fingerprint import fingerprint_bytes
from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH

MAX_PIXELS = 4096 * 4096  # snips are 576x256; anything this large is a decompression bomb or a wrong file
ASPECT = INPUT_HEIGHT / INPUT_WIDTH
ASPECT_TOLERANCE = 0.02
# The one place the snip-mode rule lives (ingest records the mode and leaves refusing to this decoder).
# Legacy preprocessing is Image.open(p).convert("L"): these modes go through that same conversion ...
CONVERTED_MODES = frozenset({"RGB", "RGBA", "LA", "P", "PA", "CMYK", "YCbCr", "1"})
# ... and these are refused, because convert("L") would silently clip them to 8 bits.
REFUSED_MODES = {
    "I;16": "16-bit",
    "I;16B": "16-bit",
    "I;16L": "16-bit",
    "I;16N": "16-bit",
    "I": "32-bit integer",
    "F": "32-bit float",
}
T = TypeVar("T")
R = TypeVar("R")
B = TypeVar("B", bound="DecodedBatch")


@dataclass(frozen=True)
class SnipRef:
    """One snip to embed, as the ledger lists it."""

    snip_id: str
    experiment_date: str
    path: str


class SnipProblem(Exception):
    """A snip that cannot be embedded; the message says why."""


def opened_snip(data: bytes) -> Image.Image:
    """One encoded snip, opened (its header read, its pixels not yet) and checked as every decode path checks it:
    readable, not a decompression bomb, a mode the legacy conversion handles, the 9:4 shape of 576x256."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise SnipProblem(f"oversized image (decompression bomb?): {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise SnipProblem(f"not a readable image ({exc})") from None
    try:
        _check_opened(image)
    except SnipProblem:
        image.close()
        raise
    return image


def _check_opened(image: Image.Image) -> None:
    w, h = image.size
    if w * h > MAX_PIXELS:
        raise SnipProblem(f"oversized image {w}x{h} (more than {MAX_PIXELS} pixels; decompression bomb?)")
    _check_mode(image.mode, image.format)
    if abs((h / w) / ASPECT - 1) > ASPECT_TOLERANCE:
        raise SnipProblem(f"image is {h}x{w} (HxW); snips must have the 9:4 shape of 576x256")


def decode_snip(data: bytes, reduced: bool = False) -> np.ndarray:
    """Legacy preprocessing of one encoded image -> uint8 [288, 128].

    Snips in a mode other than "L" are converted with Pillow's convert("L"), exactly as legacy code does;
    16-bit, 32-bit and float snips are refused (see REFUSED_MODES).
    reduced: let the JPEG decoder scale by 1/2, 1/4 or 1/8 straight to the model input (`Image.draft`)
    when the snip is an "L" JPEG of that exact multiple of 288x128, instead of decoding in full and
    resizing with BILINEAR; faster, and not bit-identical to the legacy path (benchmarks/embed.py reports
    the drift). Colour JPEGs always take the legacy path.
    """
    with opened_snip(data) as image:
        return legacy_pixels(image, reduced=reduced)


def legacy_pixels(image: Image.Image, *, reduced: bool = False) -> np.ndarray:
    """An opened, checked snip (opened_snip) -> uint8 [288, 128], as legacy code preprocesses it."""
    # Only for "L": draft("L") on a colour JPEG makes libjpeg keep its Y channel, which differs from
    # Pillow's convert("L") wherever the decoded RGB clips (measured: up to 64 grey levels).
    if reduced and image.format == "JPEG" and image.mode == "L" and _exact_reduction(*image.size):
        image.draft("L", (INPUT_WIDTH, INPUT_HEIGHT))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise SnipProblem(f"image data is damaged or truncated ({exc})") from None
    gray = image if image.mode == "L" else image.convert("L")
    if gray.size != (INPUT_WIDTH, INPUT_HEIGHT):
        gray = gray.resize((INPUT_WIDTH, INPUT_HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(gray, dtype=np.uint8)


def _check_mode(mode: str, fmt: str | None) -> None:
    """Refuse a mode that the legacy convert("L") would damage or cannot handle."""
    if mode == "L" or mode in CONVERTED_MODES:
        return
    if mode in REFUSED_MODES:
        raise SnipProblem(
            f"image mode {mode!r} ({REFUSED_MODES[mode]} {fmt}): converting to 8-bit grayscale "
            "would clip it; save the snip as 8-bit grayscale"
        )
    raise SnipProblem(
        f"image mode {mode!r} ({fmt}) is not one morphlake converts to grayscale; "
        "save the snip as 8-bit grayscale (or RGB)"
    )


def _exact_reduction(w: int, h: int) -> bool:
    """True when the JPEG decoder's DCT scaling (1/2, 1/4, 1/8) lands exactly on the model input."""
    return any(w == INPUT_WIDTH * k and h == INPUT_HEIGHT * k for k in (2, 4, 8))


fingerprint = fingerprint_bytes  # the ledger's fingerprint of the same bytes (blake2b-128)


@dataclass
class DecodedBatch:
    """A fixed-size batch: rows [0, n) are real snips, the rest is zero padding."""

    refs: list[SnipRef]
    fingerprints: list[str]
    pixels: np.ndarray
    _: KW_ONLY
    failures: list[tuple[SnipRef, str]] = field(default_factory=list)
    decode_s: float = 0.0

    @property
    def n(self) -> int:
        return len(self.refs)


def decode_chunk(chunk: list[SnipRef], batch_size: int, reduced: bool = False) -> DecodedBatch:
    """Read and decode one batch of snips; unreadable ones become failures, not exceptions."""
    batch = DecodedBatch([], [], np.zeros((batch_size, 1, INPUT_HEIGHT, INPUT_WIDTH), np.uint8))

    def decode(row: int, data: bytes) -> None:
        batch.pixels[row, 0] = decode_snip(data, reduced)

    return read_into(batch, chunk, decode)


def read_into(batch: B, chunk: list[SnipRef], place: Callable[[int, bytes], None]) -> B:
    """Read each snip of `chunk` and `place(row, data)` it in the batch's next row (decode it there, or keep it for
    a later decode); a snip that cannot be read, or that `place` refuses (SnipProblem), becomes a failure and takes
    no row. Each snip placed gets its fingerprint; the batch's decode_s is the time taken."""
    start = time.perf_counter()
    for ref in chunk:
        try:
            with open(ref.path, "rb") as handle:
                data = handle.read()
            place(batch.n, data)
        except SnipProblem as exc:
            batch.failures.append((ref, str(exc)))
            continue
        except OSError as exc:
            batch.failures.append((ref, f"cannot read file ({exc.strerror or exc})"))
            continue
        batch.refs.append(ref)
        batch.fingerprints.append(fingerprint_bytes(data))
    batch.decode_s = time.perf_counter() - start
    return batch


def chunks(snips: Iterable[SnipRef], batch_size: int) -> Iterator[list[SnipRef]]:
    chunk: list[SnipRef] = []
    for ref in snips:
        chunk.append(ref)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, *, prefetch: int | None = None, name: str = "decode"
) -> Iterator[R]:
    """fn over items in `workers` threads, results in input order, with a bounded number in flight."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    limit = prefetch or workers * 2
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def decode_batches(
    snips: Iterable[SnipRef], batch_size: int, workers: int, *, prefetch: int | None = None, reduced: bool = False
) -> Iterator[DecodedBatch]:
    """Batches in input order, decoded by `workers` threads with a bounded number in flight."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return ordered_map(
        lambda chunk: decode_chunk(chunk, batch_size, reduced), chunks(snips, batch_size), workers, prefetch=prefetch
    )
