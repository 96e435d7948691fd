"""Reduced-precision copies of an encoder: fp16 (for GPUs) and int8 (static QDQ, for CPUs)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from morphlake.embed.errors import EmbedError
from morphlake.embed.model import file_sha256

if TYPE_CHECKING:  # onnx (and the int8 recipe) load only when a copy is made: 50 ms of every start-up
    import onnx

PRECISIONS = ("fp32", "fp16", "int8")


def _set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    kept = {p.key: p.value for p in model.metadata_props if p.key not in values}
    del model.metadata_props[:]
    for key, value in {**kept, **values}.items():
        model.metadata_props.add(key=key, value=value)


def _fp16(source: Path) -> onnx.ModelProto:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # keep_io_types: the input stays uint8 pixels and the outputs float32, as the contract says.
    return convert_float_to_float16(onnx.load(source), keep_io_types=True)


def derive_encoder(
    source: Path, precision: str, *, calibration: np.ndarray | None = None, calibration_note: str = ""
) -> onnx.ModelProto:
    """The encoder at `source` in `precision` (fp16, or int8 calibrated on `calibration` pixels), its metadata
    naming where it came from and how it was made; the caller writes it where it belongs."""
    if precision not in PRECISIONS or precision == "fp32":
        raise EmbedError(f"cannot derive a {precision!r} encoder", f"choose one of: {', '.join(PRECISIONS[1:])}")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise EmbedError("an int8 encoder needs calibration images", "give it at least one decoded snip")
    from morphlake.embed.int8_recipe import INT8_RECIPE, int8_copy

    with tempfile.TemporaryDirectory(prefix="morphlake-derive-") as scratch:  # quantization's own files
        if precision == "fp16":
            model = _fp16(source)
        else:
            assert calibration is not None  # int8 without calibration images was refused above
            model = int8_copy(source, calibration, scratch=Path(scratch))
    _set_metadata(
        model,
        {
            "morphlake.precision": precision,
            "morphlake.derived_from_sha256": file_sha256(source),
            "morphlake.calibration": calibration_note if precision == "int8" else "",
            "morphlake.recipe": INT8_RECIPE if precision == "int8" else "fp16, uint8 input, fp32 outputs",
        },
    )
    return model


def cpu_int8_support() -> str:
    """Which int8 dot-product instructions this CPU has, as onnxruntime's CPU kernels would use them."""
    try:
        flags = next(
            (
                line.split(":", 1)[1].split()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("flags")
            ),
            [],
        )
    except OSError:
        return "unknown"
    for flag in ("avx512_vnni", "avx_vnni", "avx2"):
        if flag in flags:
            return flag if flag != "avx2" else "avx2 without VNNI"
    return "no AVX2"


def drift(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, smallest row cosine similarity) between two embedding matrices."""
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    cosine = np.sum(reference * other, axis=1) / np.maximum(norms, 1e-12)
    return float(np.max(np.abs(reference - other))), float(np.min(cosine))
