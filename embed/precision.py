"""Reduced-precision copies of an encoder: fp16 (for GPUs) and int8 (static QDQ, for CPUs)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from morphlake.embed.errors import EmbedError
from morphlake.embed.model import file_sha256
from morphlake.embed.onnx_graph import INPUT_NAME

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


# The int8 recipe, recorded in each copy's metadata (sweep and figures: benchmarks/README.md):
# - QDQ, uint8 activations, per-channel int8 weights: onnxruntime's fastest CPU kernels (u8s8).
# - Conv and Relu both quantized, so each activation range is the ReLU's (twice the resolution).
# - The first two convolutions stay fp32 (24% of the multiply-adds). The first one's input is raw pixels
#   against one channel's large weights: on CPUs without VNNI the u8s8 kernel (VPMADDUBSW) saturates
#   there and the embeddings lose their direction (smallest cosine 0.50 under AVX2 alone). The second
#   one is where most of the remaining rounding came from (smallest cosine 0.9935 -> 0.996).
# - The heads (Gemm, MatMul) stay fp32: quantizing their outputs rounds z itself to 256 levels.
FP32_CONVS = 2
INT8_RECIPE = "qdq u8s8 per-channel; conv+relu int8 but the first 2 convs; heads fp32; minmax calibration"


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a stable name (op and output), so nodes can be excluded from quantization by name."""
    for node in model.graph.node:
        node.name = node.name or f"{node.op_type.lower()}_{node.output[0]}"
    return model


def _fp32_convs(model: onnx.ModelProto, count: int = FP32_CONVS) -> list[str]:
    """The first `count` Conv nodes and the Relus that follow them."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"][:count]
    outputs = {c.output[0] for c in convs}
    return [c.name for c in convs] + [
        n.name for n in model.graph.node if n.op_type == "Relu" and outputs & set(n.input)
    ]


def _int8(source: Path, calibration: np.ndarray, scratch: Path) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(
                calibration[i : i + CALIBRATION_BATCH] for i in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared, quantized = scratch / "prepared.onnx", scratch / "int8.onnx"
    quant_pre_process(str(source), str(prepared))
    model = _named(onnx.load(prepared))
    onnx.save(model, prepared)
    # A fixed calibration makes every snip's embedding independent of the other snips in its batch.
    quantize_static(
        str(prepared),
        str(quantized),
        Batches(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv", "Relu"],
        nodes_to_exclude=_fp32_convs(model),
    )
    return onnx.load(quantized)


def derive_encoder(
    source: Path, precision: str, *, calibration: np.ndarray | None = None, calibration_note: str = ""
) -> onnx.ModelProto:
    """The encoder at `source` in `precision` (fp16, or int8 calibrated on `calibration` pixels), its metadata
    naming where it came from and how it was made; the caller writes it where it belongs."""
    if precision not in PRECISIONS or precision == "fp32":
        raise EmbedError(f"cannot derive a {precision!r} encoder", f"choose one of: {', '.join(PRECISIONS[1:])}")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise EmbedError("an int8 encoder needs calibration images", "give it at least one decoded snip")
    with tempfile.TemporaryDirectory(prefix="morphlake-derive-") as scratch:  # quantization's own files
        model = _fp16(source) if precision == "fp16" else _int8(source, calibration, Path(scratch))
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
