"""Embed engines: what one gives the run (Engine), and the local one, threads in this process (Ray's: ray_engine)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from morphlake.embed import EmbeddedBatch, Encoder, SnipRef, embed_snips
from morphlake.embed.gpu_decode import GpuDecoder, nvimgcodec_module
from morphlake.embed.model import CUDA
from morphlake.embed.runner import default_workers
from morphlake.lake.runs import RunRecord
from morphlake.steps.embed.decode_check import check_decode
from morphlake.steps.embed.options import EmbedOptions, refuse_gpu_decode_without_gpu
from morphlake.steps.embed.plan import snip_refs

log = logging.getLogger("morphlake")


@dataclass(frozen=True)
class Engine:
    """`batches(plans)` yields EmbeddedBatch in plan order; `check_decode(snips)` checks --decode gpu against the
    legacy decode where the engine decodes (decode_check), returning its figures."""

    batches: Callable[[dict[str, pa.Table]], Iterator[EmbeddedBatch]]
    check_decode: Callable[[list[SnipRef]], dict]


def refuse_gpu_decode_off_gpu(encoder: Encoder, options: EmbedOptions) -> None:
    """--decode gpu where the encoder did not open on a GPU (--device auto on a host without one), or without
    nvImageCodec, is refused before the run plans anything (with --engine ray, on the actors: ray_engine)."""
    if options.engine != "local" or options.decode != "gpu":
        return
    if encoder.provider != CUDA:
        refuse_gpu_decode_without_gpu(
            options.decode, why=f"--device {options.device} opened the encoder on {encoder.provider}"
        )
    nvimgcodec_module()  # the gpu-decode extra, or the error that names it


def gpu_decoder_for(encoder: Encoder, options: EmbedOptions, *, slots: int) -> GpuDecoder | None:
    """The GPU decoder of --decode gpu (None for the other decodes), on the encoder's device."""
    if options.decode != "gpu":
        return None
    return GpuDecoder(slots=slots, device="cuda" if encoder.provider == CUDA else "cpu")


@contextmanager
def embed_engine(record: RunRecord, encoder: Encoder, options: EmbedOptions, *, total: int) -> Iterator[Engine]:
    """`with embed_engine(...) as engine:` then `engine.batches(plans)` yields EmbeddedBatch: embed_snips in this
    process (local), or Ray Data on a cluster (ray); the run record's `engine` says which ran where."""
    if options.engine == "ray":
        from morphlake.steps.embed.ray_engine import ray_engine

        with ray_engine(record, encoder, options, total=total) as engine:
            yield engine
        return
    gpu = not encoder.concurrent  # on CUDA the threads only decode, for the one thread that feeds the GPU
    workers, batch_size = options.workers or default_workers(feeding_gpu=gpu), options.batch_for(gpu=gpu)
    decoder = gpu_decoder_for(encoder, options, slots=batch_size)
    described: dict[str, object] = {"name": "local", "nodes": 1, "workers": workers, "batch_size": batch_size}
    if decoder is not None:
        described["jpeg_decode"] = {"by": "nvImageCodec", "on": decoder.device, "resize_on": decoder.provider}
    record.set("engine", described)
    log.info("%d decode thread(s), batches of %d on %s", workers, batch_size, encoder.provider)
    if decoder is not None:
        log.info("grey JPEG snips decoded by nvImageCodec on %s, resized on %s", decoder.device, decoder.provider)

    def local_batches(plans: dict[str, pa.Table]) -> Iterator[EmbeddedBatch]:
        refs = snip_refs(plans)
        return embed_snips(
            refs, encoder, batch_size, workers=workers, reduced=options.reduced_decode, gpu_decoder=decoder
        )

    def local_check(todo: list[SnipRef]) -> dict:
        return check_decode(
            encoder,
            todo,
            decode=options.decode,
            batch_size=batch_size,
            min_cosine=options.min_cosine,
            gpu_decoder=decoder,
        )

    yield Engine(local_batches, local_check)
