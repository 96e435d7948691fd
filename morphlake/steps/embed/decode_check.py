"""Before a --decode gpu run embeds anything: its decode against the legacy decode, through the same encoder, on the
first snips it embeds; refused below --min-cosine, the figures in the run record."""

from __future__ import annotations

import logging

import numpy as np

from morphlake.embed import Encoder
from morphlake.embed.gpu_decode import GpuDecoder, prepare_chunk
from morphlake.embed.precision import drift
from morphlake.embed.reader import SnipRef, chunks, decode_chunk
from morphlake.errors import MorphlakeError

log = logging.getLogger("morphlake")
CHECK_SNIPS = 128


def _embedded(encoder: Encoder, refs: list[SnipRef], *, pixels, rows: int) -> dict[str, np.ndarray]:
    return dict(zip((r.snip_id for r in refs), encoder.run(pixels)[0][:rows])) if rows else {}


def check_decode(
    encoder: Encoder,
    todo: list[SnipRef],
    *,
    decode: str,
    batch_size: int,
    min_cosine: float,
    gpu_decoder: GpuDecoder | None = None,
) -> dict:
    """Embed up to CHECK_SNIPS of `todo` decoded both ways (the legacy decode, and `decode`: "gpu" with its decoder,
    or "reduced") and compare z_mu snip by snip; raise below `min_cosine`, else return the figures."""
    legacy: dict[str, np.ndarray] = {}
    run: dict[str, np.ndarray] = {}
    for chunk in chunks(todo[:CHECK_SNIPS], batch_size):
        plain = decode_chunk(chunk, batch_size)
        legacy |= _embedded(encoder, plain.refs, pixels=plain.pixels, rows=plain.n)
        if gpu_decoder is not None:
            prepared = prepare_chunk(chunk, batch_size)
            pixels = gpu_decoder.pixels(prepared)  # first: a row it cannot decode leaves prepared.refs
            run |= _embedded(encoder, prepared.refs, pixels=pixels, rows=prepared.n)
        else:
            fast = decode_chunk(chunk, batch_size, reduced=True)
            run |= _embedded(encoder, fast.refs, pixels=fast.pixels, rows=fast.n)
    both = [s for s in legacy if s in run]
    if not both:
        return {"snips": 0, "decode": decode, "note": "no readable snip to check the decode on (the run embeds none)"}
    worst_abs, worst_cos = drift(np.stack([legacy[s] for s in both]), np.stack([run[s] for s in both]))
    figures = {
        "snips": len(both),
        "decode": decode,
        "against": "legacy",
        "min_cosine": round(worst_cos, 6),
        "max_abs_dz": round(worst_abs, 6),
        "identical": int(sum(np.array_equal(legacy[s], run[s]) for s in both)),
        "bound_min_cosine": min_cosine,
    }
    log.info(
        "--decode %s checked against the legacy decode on %d snips of this run: smallest cosine %.6f, "
        "largest |dz| %.3g, %d identical",
        decode,
        len(both),
        worst_cos,
        worst_abs,
        figures["identical"],
    )
    if not worst_cos >= min_cosine:  # NaN fails too
        raise MorphlakeError(
            f"--decode {decode} drifts from the legacy decode on this run's snips: smallest cosine {worst_cos:.4f} "
            f"(largest |dz| {worst_abs:.3g}) on {len(both)} snips, below the bound {min_cosine}",
            "embed with --decode legacy (the legacy-faithful decode), or accept the drift with a lower --min-cosine",
        )
    return figures
