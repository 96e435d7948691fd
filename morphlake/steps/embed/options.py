"""How `embed` runs (device, batching, decode, precision), validated once where the options are made."""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, asdict, dataclass

from morphlake.embed.model import DEVICES
from morphlake.embed.precision import PRECISIONS
from morphlake.errors import MorphlakeError

DECODES = ("legacy", "reduced", "gpu")
ENGINES = ("local", "ray")
# Batch sizes when --batch-size is not given. The CPU's: each thread encodes its own batch, and 64 measured best
# (benchmarks/embed.py's sweep). The GPU's: one stream of batches keeps the GPU busy only when each is large; 256 is
# provisional until benchmarks/gpu.py's sweep on a GPU host (64, 256, 1024) finds the plateau.
CPU_BATCH, GPU_BATCH = 64, 256
MIN_COSINE = 0.99  # a reduced-precision copy whose z_mu points elsewhere than fp32's by more is refused


def refuse_int8_on_gpu(precision: str, *, why: str) -> None:
    """int8 is for CPUs: onnxruntime's CUDA provider has no int8 convolution kernels, so a QDQ graph there runs its
    quantized nodes as float around extra quantize/dequantize steps (slower than fp32), or falls back to the CPU."""
    if precision == "int8":
        raise MorphlakeError(
            f"--precision int8 on the GPU ({why}): onnxruntime has no int8 convolution kernels on CUDA, so it would "
            "run slower than fp32 there, or on the CPU",
            "use --precision fp16 on GPUs; int8 is for CPUs (--device cpu)",
        )


# For the suite and the GPU check's smoke run only: --decode gpu runs nvImageCodec's CPU backend and the resize graph
# on the CPU, so the path is tested where there is no GPU (the run record's engine says where it ran).
GPU_DECODE_ON_CPU = "MORPHLAKE_GPU_DECODE_ON_CPU"


def refuse_gpu_decode_without_gpu(decode: str, *, why: str) -> None:
    """--decode gpu decodes on the encoder's GPU: without one it is refused, never run on the CPU."""
    if decode == "gpu" and os.environ.get(GPU_DECODE_ON_CPU) != "1":
        raise MorphlakeError(
            f"--decode gpu decodes JPEG snips on the GPU, and there is none here ({why})",
            "run on a GPU host with --device cuda (or auto), or use --decode reduced, the fast decode for CPUs",
        )


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise MorphlakeError(f"unknown {name} {value!r}", f"choose one of: {', '.join(allowed)}")


@dataclass(frozen=True)
class EmbedOptions:
    """Everything but the model and the lake that decides how snips are embedded; invalid values fail here,
    naming the allowed ones, before any run starts."""

    device: str = "auto"
    batch_size: int | None = None  # None: CPU_BATCH on the CPU, GPU_BATCH on CUDA (batch_for)
    workers: int | None = None  # None: the CPU count (at most 8; every core when they decode for a GPU)
    _: KW_ONLY
    threads: int = 1  # onnxruntime intra-op threads per batch (0: onnxruntime's default)
    decode: str = "legacy"
    precision: str = "fp32"
    min_cosine: float = MIN_COSINE
    engine: str = "local"  # ray: Ray Data on a cluster (ray_engine), the same plan, encoder and lake
    ray_address: str | None = None  # None: a local Ray instance

    def __post_init__(self) -> None:
        _one_of("device", self.device, DEVICES)
        _one_of("decode", self.decode, DECODES)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("engine", self.engine, ENGINES)
        if self.device == "cuda":
            refuse_int8_on_gpu(self.precision, why="--device cuda")
        if self.device == "cpu":
            refuse_gpu_decode_without_gpu(self.decode, why="--device cpu")
        if self.ray_address and self.engine != "ray":
            raise MorphlakeError(
                f"a Ray address ({self.ray_address}) was given to the {self.engine} engine", "add --engine ray"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise MorphlakeError(f"batch size must be at least 1, got {self.batch_size}", "use e.g. 64")
        if self.workers is not None and self.workers < 1:
            raise MorphlakeError(f"workers must be at least 1, got {self.workers}", "leave it unset for the CPU count")
        if self.threads < 0:
            raise MorphlakeError(f"threads must be 0 or more, got {self.threads}", "use 1 (the default) or 0")
        if not -1 <= self.min_cosine <= 1:
            raise MorphlakeError(f"min cosine {self.min_cosine} is not a cosine", "use a value from -1 to 1, e.g. 0.99")

    def batch_for(self, *, gpu: bool) -> int:
        """The batch size to run: --batch-size, else the CPU's or the GPU's default."""
        return self.batch_size or (GPU_BATCH if gpu else CPU_BATCH)

    @property
    def reduced_decode(self) -> bool:
        return self.decode == "reduced"

    @property
    def checked_decode(self) -> bool:
        """Whether a run checks its decode against the legacy one before it embeds: --decode gpu, whose JPEG decoder
        is not libjpeg-turbo. (--decode reduced is not: its drift is a known, measured property of DCT scaling,
        cosine ~0.988 on noisy snips, benchmarks/decode.py, under the default bound that guards the GPU's.)"""
        return self.decode == "gpu"

    @property
    def driver_device(self) -> str:
        """Where the driver opens the encoder: the device asked for locally; with ray the actors run it there and
        the driver (often a head node without a GPU) reads its description and checks copies on its CPU."""
        return "cpu" if self.engine == "ray" else self.device

    def value(self, precision: str | None = None) -> str | None:
        """The embeddings' `embed_options` column: None for the legacy-faithful path, else what differs
        (`precision` is the precision that actually ran: an fp16 file passed as the model counts too)."""
        precision = precision or self.precision
        parts = ([f"decode={self.decode}"] if self.decode != "legacy" else []) + (
            [f"precision={precision}"] if precision != "fp32" else []
        )
        return ",".join(parts) or None

    def to_dict(self) -> dict:
        return asdict(self)
