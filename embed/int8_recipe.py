"""The int8 recipe: static QDQ quantization of the encoder, with equalized ranges and corrected biases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from morphlake.embed.architecture import INPUT_NAME
from morphlake.embed.errors import EmbedError

CALIBRATION_BATCH = 32

# The int8 recipe, recorded in each copy's metadata (sweep and figures: benchmarks/README.md):
# - QDQ, uint8 activations, per-channel int8 weights: onnxruntime's fastest CPU kernels (u8s8).
# - Conv and Relu both quantized, so each activation range is the ReLU's (twice the resolution).
# - The first two convolutions stay fp32 (24% of the multiply-adds). The first one's input is raw pixels
#   against one channel's large weights: on CPUs without VNNI the u8s8 kernel (VPMADDUBSW) saturates
#   there and the embeddings lose their direction (smallest cosine 0.50 under AVX2 alone).
# - The heads (Gemm, MatMul) stay fp32: quantizing their outputs rounds z itself to 256 levels.
# - Activation ranges equalized before quantizing (cross-layer equalization, Nagel et al. 2019): an
#   activation tensor shares one uint8 scale, but its channels' ranges differ (the median channel reaches a
#   quarter of the tensor's maximum, so it used 6 bits of 8). ReLU commutes with a positive scale, so each
#   channel c of a ReLU output is divided by s_c (its conv's output channel) and multiplied back in its
#   consumer's input channel: exact in fp32. s_c = sqrt(activation max / consumer weight max), balancing
#   the activation's resolution against the consumer's per-channel weight resolution; into the fp32 heads,
#   s_c = activation max (no weight cost); s_c is bounded to 1/16..1, so a channel that stays small in
#   calibration is raised by at most 16x.
# - Bias correction (same paper): rounded weights shift each output channel's mean (ReLU inputs are
#   positive, so the rounding errors do not average out across an image); each quantized conv's bias is
#   corrected by the rounded-minus-exact weights applied to its mean fp32 input over the calibration snips.
#   This shift, not the ranges, was most of the drift on noisy snips: MinMax, Percentile and Entropy
#   calibration all gave 0.989 there; bias correction alone 0.9955, with equalization 0.998.
FP32_CONVS = 2
EQUALIZE_MAX_BOOST = 16.0
INT8_RECIPE = (
    "qdq u8s8 per-channel; conv+relu int8 but the first 2 convs; heads fp32; minmax calibration; "
    "relu ranges equalized (sqrt balance, heads full, boost <= 16); conv bias correction"
)


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a stable name (op and output), so nodes can be excluded from quantization by name."""
    for node in model.graph.node:
        node.name = node.name or f"{node.op_type.lower()}_{node.output[0]}"
    return model


def _fp32_convs(model: onnx.ModelProto) -> list[str]:
    """The first FP32_CONVS Conv nodes and the Relus that follow them."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"][:FP32_CONVS]
    outputs = {c.output[0] for c in convs}
    return [c.name for c in convs] + [
        n.name for n in model.graph.node if n.op_type == "Relu" and outputs & set(n.input)
    ]


def _activations(model: onnx.ModelProto, pixels: np.ndarray, names: list[str], *, reduce) -> list[np.ndarray]:
    """reduce(batch values, previous or None) folded over the fp32 tensors `names` on the pixels."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    folded: list = [None] * len(names)
    for i in range(0, len(pixels), CALIBRATION_BATCH):
        values = session.run(names, {INPUT_NAME: pixels[i : i + CALIBRATION_BATCH]})
        folded = [reduce(v, f) for v, f in zip(values, folded)]
    return folded


def _relu_links(model: onnx.ModelProto, first: int) -> list[tuple[onnx.NodeProto, str, list[onnx.NodeProto]]]:
    """(conv, its ReLU's output, the consumers) for each conv from index `first` whose ReLU output feeds
    only the next conv (as its input) or only a Flatten into Gemms with transposed weights (the heads)."""
    nodes = model.graph.node

    def readers(name: str) -> list[onnx.NodeProto]:
        return [n for n in nodes if name in n.input]

    links = []
    for conv in [n for n in nodes if n.op_type == "Conv"][first:]:
        relu = readers(conv.output[0])
        if len(relu) != 1 or relu[0].op_type != "Relu":
            continue
        out = relu[0].output[0]
        after = readers(out)
        if len(after) == 1 and after[0].op_type == "Conv" and list(after[0].input[:1]) == [out]:
            links.append((conv, out, after))
        elif len(after) == 1 and after[0].op_type == "Flatten":
            heads = readers(after[0].output[0])
            if heads and all(
                h.op_type == "Gemm" and h.input[0] == after[0].output[0] and _attr(h, "transB", 0) == 1 for h in heads
            ):
                links.append((conv, out, heads))
    return links


def _attr(node: onnx.NodeProto, name: str, default):
    attr = next((a for a in node.attribute if a.name == name), None)
    return default if attr is None else onnx.helper.get_attribute_value(attr)


def _equalize(model: onnx.ModelProto, calibration: np.ndarray) -> onnx.ModelProto:
    """Equalize the channel ranges of the ReLU outputs that feed quantized convs or the heads (see the
    recipe): the same function in fp32, with each activation channel nearer its tensor's range."""
    weights = {t.name: t for t in model.graph.initializer}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(weights[name]).astype(np.float64)

    def put(name: str, value: np.ndarray) -> None:
        weights[name].CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))

    first = FP32_CONVS - 1  # the last fp32 conv's output feeds the first quantized one
    links = _relu_links(model, first)
    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    if len(links) != convs - first:
        raise _unknown_graph(f"{len(links)} of the {convs - first} ReLU outputs to equalize follow the pattern")
    maxima = _activations(
        model,
        calibration,
        [out for _, out, _ in links],
        reduce=lambda v, m: v.max(axis=(0, 2, 3)) if m is None else np.maximum(m, v.max(axis=(0, 2, 3))),
    )
    for (conv, _, consumers), reach in zip(links, maxima):
        if not reach.max() > 0:  # the layer's output is 0 on every calibration snip: nothing to balance
            continue
        reach = np.maximum(reach.astype(np.float64), reach.max() / EQUALIZE_MAX_BOOST)
        if consumers[0].op_type == "Conv":
            w = np.abs(array(consumers[0].input[1])).max(axis=(0, 2, 3))
            scale = np.sqrt(reach / np.maximum(w, w.max() / EQUALIZE_MAX_BOOST))
        else:  # fp32 heads: no weight resolution to balance against
            scale = reach
        scale = np.clip(scale / scale.max(), 1 / EQUALIZE_MAX_BOOST, 1.0)
        put(conv.input[1], array(conv.input[1]) / scale[:, None, None, None])
        if len(conv.input) > 2 and conv.input[2]:
            put(conv.input[2], array(conv.input[2]) / scale)
        for reader in consumers:
            w = array(reader.input[1])
            if reader.op_type == "Conv":
                put(reader.input[1], w * scale[None, :, None, None])
            else:  # Gemm over the flattened channels, transB: features are the weight's columns
                put(reader.input[1], w * np.repeat(scale, w.shape[1] // len(scale))[None, :])
    return model


def _bias_correct(quantized: onnx.ModelProto, prepared: onnx.ModelProto, calibration: np.ndarray) -> onnx.ModelProto:
    """Correct each quantized conv's int32 bias for the mean shift its rounded weights give its output."""
    q_inits = {t.name: t for t in quantized.graph.initializer}
    fp_inits = {t.name: t for t in prepared.graph.initializer}
    dequantized = {n.output[0]: n for n in quantized.graph.node if n.op_type == "DequantizeLinear"}

    def qdq(name: str) -> tuple[onnx.TensorProto, np.ndarray, np.ndarray] | None:
        """(quantized initializer, scale, zero point) of the DequantizeLinear that yields `name`."""
        node = dequantized.get(name)
        if node is None or len(node.input) < 3 or not all(i in q_inits for i in node.input):
            return None
        return q_inits[node.input[0]], *(numpy_helper.to_array(q_inits[i]).astype(np.float64) for i in node.input[1:])

    by_name = {n.name: n for n in quantized.graph.node if n.op_type == "Conv"}
    todo = []
    for conv in (n for n in prepared.graph.node if n.op_type == "Conv" and n.name in by_name):
        q = by_name[conv.name]
        weight, bias = qdq(q.input[1]), qdq(q.input[2]) if len(q.input) > 2 else None
        plain = _attr(conv, "group", 1) == 1 and set(_attr(conv, "dilations", [1, 1])) == {1}
        if weight and bias and conv.input[1] in fp_inits and plain and _attr(conv, "auto_pad", b"NOTSET") == b"NOTSET":
            todo.append((conv, weight, bias))
    quantized_convs = len(by_name) - FP32_CONVS  # the first FP32_CONVS stay fp32 (nodes_to_exclude)
    if len(todo) != quantized_convs:
        raise _unknown_graph(
            f"{len(todo)} of the {quantized_convs} quantized convolutions can have their bias corrected"
        )
    inputs = [conv.input[0] for conv, _, _ in todo]
    sums = _activations(
        prepared, calibration, inputs, reduce=lambda v, s: v.sum(0, np.float64) + (0 if s is None else s)
    )
    for (conv, (wq, ws, wz), (bq, bs, _)), total in zip(todo, sums):
        exact = numpy_helper.to_array(fp_inits[conv.input[1]]).astype(np.float64)
        shape = (-1,) + (1,) * (exact.ndim - 1)
        rounded = (numpy_helper.to_array(wq).astype(np.float64) - wz.reshape(shape)) * ws.reshape(shape)
        kh, kw = exact.shape[2:]
        sh, sw = _attr(conv, "strides", [1, 1])
        top, left, bottom, right = _attr(conv, "pads", [0, 0, 0, 0])
        x = np.pad(total / len(calibration), ((0, 0), (top, bottom), (left, right)))
        oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
        # mean input under each kernel tap over the output positions: (channels, kh, kw)
        under = np.stack(
            [[x[:, i : i + sh * oh : sh, j : j + sw * ow : sw].mean(axis=(1, 2)) for j in range(kw)] for i in range(kh)]
        ).transpose(2, 0, 1)
        shift = np.einsum("ochw,chw->o", rounded - exact, under)
        corrected = np.round(numpy_helper.to_array(bq).astype(np.float64) - shift / bs)
        bq.CopyFrom(numpy_helper.from_array(corrected.astype(np.int32), bq.name))
    return quantized


def _unknown_graph(what: str) -> EmbedError:
    return EmbedError(
        f"the int8 recipe does not fit this encoder's graph: {what} (a plain Conv-ReLU chain into the heads, "
        "each quantized Conv with a bias, is what it knows)",
        "embed with fp32 (no --precision), or with --precision fp16",
    )


def int8_copy(source: Path, calibration: np.ndarray, *, scratch: Path) -> onnx.ModelProto:
    """The int8 copy of the encoder at `source` by the recipe above, calibrated on `calibration` pixels;
    `scratch` is a folder for quantization's own files."""
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

    equalized, prepared, quantized = scratch / "equalized.onnx", scratch / "prepared.onnx", scratch / "int8.onnx"
    onnx.save(_equalize(onnx.load(source), calibration), equalized)
    quant_pre_process(str(equalized), str(prepared))
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
    return _bias_correct(onnx.load(quantized), model, calibration)
