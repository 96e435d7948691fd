"""reader -> encoder: stream embedded batches with per-batch read and inference timings."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from embed.model import Encoder
from embed.reader import SnipRef, decode_batches


@dataclass
class EmbeddedBatch:
    """Embeddings of the snips of one batch that decoded, and the ones that did not."""

    refs: list[SnipRef]
    fingerprints: list[str]
    z_mu: np.ndarray
    z_logvar: np.ndarray
    failures: list[tuple[SnipRef, str]] = field(default_factory=list)
    decode_s: float = 0.0  # CPU seconds spent decoding (in the worker threads)
    wait_s: float = 0.0    # wall seconds the encoder waited for decoded input
    infer_s: float = 0.0


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2)))


def embed_snips(snips: Iterable[SnipRef], encoder: Encoder, batch_size: int = 64,
                workers: int | None = None) -> Iterator[EmbeddedBatch]:
    """Decode in parallel with inference; every batch has the same size (the last one is padded)."""
    batches = decode_batches(snips, batch_size, workers or default_workers())
    while True:
        start = time.perf_counter()
        batch = next(batches, None)
        waited = time.perf_counter() - start
        if batch is None:
            return
        t0 = time.perf_counter()
        if batch.n:
            mu, logvar = encoder.run(batch.pixels)
            mu, logvar = mu[: batch.n], logvar[: batch.n]
        else:
            dim = encoder.info.latent_dim
            mu = logvar = np.zeros((0, dim), np.float32)
        yield EmbeddedBatch(batch.refs, batch.fingerprints, mu, logvar, batch.failures,
                            batch.decode_s, waited, time.perf_counter() - t0)
