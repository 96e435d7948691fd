"""reader -> encoder: stream embedded batches with per-batch read and inference timings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import KW_ONLY, dataclass, field, replace

import numpy as np

from morphlake.embed.gpu_decode import GpuDecoder, PreparedBatch, prepare_chunk
from morphlake.embed.model import Encoder
from morphlake.embed.reader import DecodedBatch, SnipRef, chunks, decode_batches, decode_chunk, ordered_map


@dataclass(frozen=True)
class EmbeddedBatch:
    """Embeddings of the snips of one batch that decoded, and the ones that did not."""

    refs: list[SnipRef]
    fingerprints: list[str]
    z_mu: np.ndarray
    _: KW_ONLY
    z_logvar: np.ndarray
    failures: list[tuple[SnipRef, str]] = field(default_factory=list)
    decode_s: float = 0.0  # CPU seconds spent decoding (in the worker threads)
    wait_s: float = 0.0  # wall seconds the consumer waited for this batch
    infer_s: float = 0.0  # wall seconds of the encoder run


def default_workers(*, feeding_gpu: bool = False) -> int:
    """Threads to decode (and, on the CPU, encode) with: one per core, at most 8 on the CPU (where each also runs
    the encoder, and more bring nothing measured), every core when they only decode for a GPU (decoding is then
    the bound: benchmarks/gpu.py shows where adding threads stops helping)."""
    cores = os.cpu_count() or 2
    return max(1, cores if feeding_gpu else min(8, cores))


def _embed(encoder: Encoder, pixels, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The encoder on a padded batch (host array or device OrtValue), keeping its first `rows` rows."""
    if not rows:
        empty = np.zeros((0, encoder.info.latent_dim), np.float32)
        return empty, empty
    mu, logvar = encoder.run(pixels)
    return mu[:rows], logvar[:rows]


def _embedded(batch: DecodedBatch, z: tuple[np.ndarray, np.ndarray], *, waited: float, since: float) -> EmbeddedBatch:
    """The batch's snips with their means and log-variances, and its timings (the encoder's from `since`)."""
    return EmbeddedBatch(
        batch.refs,
        batch.fingerprints,
        z[0],
        z_logvar=z[1],
        failures=batch.failures,
        decode_s=batch.decode_s,
        wait_s=waited,
        infer_s=time.perf_counter() - since,
    )


def embed_decoded(batch: DecodedBatch, encoder: Encoder, waited: float = 0.0) -> EmbeddedBatch:
    """Run the encoder on one decoded batch (padding included) and keep the rows of its snips."""
    start = time.perf_counter()
    return _embedded(batch, _embed(encoder, batch.pixels, batch.n), waited=waited, since=start)


def embed_prepared(batch: PreparedBatch, encoder: Encoder, gpu: GpuDecoder, *, waited: float = 0.0) -> EmbeddedBatch:
    """--decode gpu: decode the batch's JPEGs on the GPU, resize them there and run the encoder on the result."""
    start = time.perf_counter()
    pixels = gpu.pixels(batch)  # first: a row it cannot decode leaves the batch
    return _embedded(batch, _embed(encoder, pixels, batch.n), waited=waited, since=start)


def embed_snips(
    snips: Iterable[SnipRef],
    encoder: Encoder,
    batch_size: int = 64,
    *,
    workers: int | None = None,
    reduced: bool = False,
    gpu_decoder: GpuDecoder | None = None,
) -> Iterator[EmbeddedBatch]:
    """Embedded batches in input order; every batch runs at the same size (the last one is padded).

    On the CPU each of `workers` threads decodes a batch and runs the encoder on it, so decode and
    inference share the cores without handing batches between threads (onnxruntime and Pillow both
    release the GIL). On CUDA the threads only decode, and this thread feeds the GPU through IO binding.
    With `gpu_decoder` (--decode gpu) the threads read and check the snips, and this thread decodes the
    batch's JPEGs on the GPU, resizes them there and runs the encoder on the device's pixels.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    workers = workers or default_workers(feeding_gpu=not encoder.concurrent)
    if gpu_decoder is not None:
        prepared = ordered_map(lambda chunk: prepare_chunk(chunk, batch_size), chunks(snips, batch_size), workers)
        for batch, waited in _waited(prepared):
            yield embed_prepared(batch, encoder, gpu_decoder, waited=waited)
    elif encoder.concurrent:
        jobs = ordered_map(
            lambda chunk: embed_decoded(decode_chunk(chunk, batch_size, reduced), encoder),
            chunks(snips, batch_size),
            workers,
            name="embed",
        )
        for batch, waited in _waited(jobs):
            yield replace(batch, wait_s=waited)
    else:
        for batch, waited in _waited(decode_batches(snips, batch_size, workers, reduced=reduced)):
            yield embed_decoded(batch, encoder, waited)


def _waited(items: Iterator) -> Iterator[tuple]:
    """Each item with the wall seconds this thread waited for it."""
    while True:
        start = time.perf_counter()
        item = next(items, None)
        waited = time.perf_counter() - start
        if item is None:
            return
        yield item, waited
