"""Reduced-precision copies of an encoder: fp16 (for GPUs) and int8 (static QDQ, for CPUs)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx

from embed.errors import EmbedError
from embed.model import file_sha256
from embed.onnx_graph import INPUT_NAME

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_BATCH = 32


def _set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    kept = {p.key: p.value for p in model.metadata_props if p.key not in values}
    del model.metadata_props[:]
    for key, value in {**kept, **values}.items():
        model.metadata_props.add(key=key, value=value)


def _fp16(source: Path) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # keep_io_types: the input stays uint8 pixels and the outputs float32, as the contract says.
    return convert_float_to_float16(onnx.load(source), keep_io_types=True)


def _int8(source: Path, calibration: np.ndarray, scratch: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration[i:i + CALIBRATION_BATCH] for i in range(0, len(calibration), CALIBRATION_BATCH))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared, quantized = scratch / "prepared.onnx", scratch / "int8.onnx"
    quant_pre_process(str(source), str(prepared))
    # Per-channel int8 weights, uint8 activations with min/max ranges from the calibration images:
    # a fixed calibration makes every snip's embedding independent of the other snips in its batch.
    quantize_static(str(prepared), str(quantized), Batches(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    return onnx.load(quantized)


def derive_encoder(source: Path, precision: str, out: Path, calibration: np.ndarray | None = None,
                   calibration_note: str = "") -> Path:
    """Write `out`: the encoder at `source` in `precision`, its metadata naming where it came from."""
    if precision not in PRECISIONS or precision == "fp32":
        raise EmbedError(f"cannot derive a {precision!r} encoder", f"choose one of: {', '.join(PRECISIONS[1:])}")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise EmbedError("an int8 encoder needs calibration images", "embed at least one snip first")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".derive-") as scratch:
        model = _fp16(source) if precision == "fp16" else _int8(source, calibration, Path(scratch))
        _set_metadata(model, {"morphlake.precision": precision, "morphlake.derived_from_sha256": file_sha256(source),
                              "morphlake.calibration": calibration_note if precision == "int8" else ""})
        staged = Path(scratch) / "derived.onnx"
        onnx.save(model, staged)
        os.replace(staged, out)
    return out


def drift(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, smallest row cosine similarity) between two embedding matrices."""
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1)
    cosine = np.sum(reference * other, axis=1) / np.maximum(norms, 1e-12)
    return float(np.max(np.abs(reference - other))), float(np.min(cosine))
