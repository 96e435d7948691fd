"""Build the legacy encoder as a self-describing ONNX model from a mapping of weight arrays."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from morphlake.embed.architecture import (
    ARCHITECTURE,
    BN_EPS,
    CHANNELS,
    INPUT_HEIGHT,
    INPUT_NAME,
    INPUT_WIDTH,
    KERNEL,
    LOGVAR_NAME,
    MU_NAME,
    PADDING,
    PREPROCESSING,
    STRIDE,
    EncoderSpec,
)
from morphlake.embed.errors import EncoderFileError

OPSET = 17


def check_weights(weights: Mapping[str, np.ndarray], spec: EncoderSpec) -> None:
    """Every expected key present with its shape; raise EncoderFileError listing what is wrong."""
    expected = spec.expected_shapes()
    problems = [f"missing key {k!r} (shape {s})" for k, s in expected.items() if k not in weights]
    problems += [
        f"key {k!r} has shape {tuple(np.shape(weights[k]))}, expected {s}"
        for k, s in expected.items()
        if k in weights and tuple(np.shape(weights[k])) != s
    ]
    ignored = {k for k in weights if k.endswith("num_batches_tracked")}
    problems += [f"unexpected key {k!r}" for k in weights if k not in expected and k not in ignored]
    if problems:
        raise EncoderFileError(
            "the weights do not match the legacy encoder architecture "
            f"(latent_dim {spec.latent_dim}):\n    " + "\n    ".join(problems[:12]),
            "pass the encoder_reformatted.pt state dict and the model_config.json of the same model",
        )


def fold_batchnorm(weights: Mapping[str, np.ndarray], block: int) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight and bias of one block with its BatchNorm (eval mode) folded in."""
    conv, bn = f"conv_layers.{3 * block}", f"conv_layers.{3 * block + 1}"
    w = np.asarray(weights[f"{conv}.weight"], np.float64)
    b = np.asarray(weights[f"{conv}.bias"], np.float64)
    scale = np.asarray(weights[f"{bn}.weight"], np.float64) / np.sqrt(
        np.asarray(weights[f"{bn}.running_var"], np.float64) + BN_EPS
    )
    shift = (
        np.asarray(weights[f"{bn}.bias"], np.float64) - np.asarray(weights[f"{bn}.running_mean"], np.float64) * scale
    )
    return (w * scale[:, None, None, None]).astype(np.float32), (b * scale + shift).astype(np.float32)


class _Initializers:
    """The graph's weights, added as its nodes name them."""

    def __init__(self) -> None:
        self.tensors: list[onnx.TensorProto] = []

    def __call__(self, name: str, array: np.ndarray) -> str:
        self.tensors.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name


def _conv_blocks(weights: Mapping[str, np.ndarray], const: _Initializers) -> list[onnx.NodeProto]:
    """uint8 image -> pixels / 255 -> five Conv (BatchNorm folded) + ReLU blocks -> flattened `features`."""
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["pixels", const("scale_255", np.array(255.0))], ["x0"]),
    ]
    x = "x0"
    for i in range(len(CHANNELS) - 1):
        w, b = fold_batchnorm(weights, i)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(f"conv{i}.weight", w), const(f"conv{i}.bias", b)],
                [f"conv{i}"],
                kernel_shape=[KERNEL, KERNEL],
                strides=[STRIDE, STRIDE],
                pads=[PADDING] * 4,
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"x{i + 1}"]))
        x = f"x{i + 1}"
    nodes.append(helper.make_node("Flatten", [x], ["features"], axis=1))
    return nodes


def _linear(weights: Mapping[str, np.ndarray], const: _Initializers, *, layer: str, output: str) -> onnx.NodeProto:
    """`features` through one of the encoder's Linear layers (weight [out, in], bias)."""
    inputs = [
        "features",
        const(f"{layer}.weight", weights[f"{layer}.weight"]),
        const(f"{layer}.bias", weights[f"{layer}.bias"]),
    ]
    return helper.make_node("Gemm", inputs, [output], transB=1)


def _heads(weights: Mapping[str, np.ndarray], const: _Initializers) -> list[onnx.NodeProto]:
    """The mean head (Linear, then the fixed orthogonal Linear without bias) and the log-variance head."""
    return [
        _linear(weights, const, layer="embedding0", output="h"),
        helper.make_node(
            "MatMul", ["h", const("embedding.weight_t", np.asarray(weights["embedding.weight"]).T)], [MU_NAME]
        ),
        _linear(weights, const, layer="log_var", output=LOGVAR_NAME),
    ]


def _properties(spec: EncoderSpec, metadata: Mapping[str, object]) -> dict[str, str]:
    """The model's metadata properties: the architecture, its input and preprocessing, and the caller's."""
    props = {
        "morphlake.architecture": ARCHITECTURE,
        "morphlake.input_size": f"{INPUT_HEIGHT}x{INPUT_WIDTH}",
        "morphlake.input": "uint8 [N,1,288,128], scaled by 1/255 inside the graph",
        "morphlake.latent_dim": str(spec.latent_dim),
        "morphlake.zn_frac": str(spec.zn_frac),
        "morphlake.nuisance_dims": str(spec.nuisance_dims),
        "morphlake.preprocessing": PREPROCESSING,
        "morphlake.batchnorm": "folded into conv (eval mode, eps 1e-5)",
    }
    props.update({f"morphlake.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
    return props


def build_encoder_model(
    weights: Mapping[str, np.ndarray], spec: EncoderSpec, metadata: Mapping[str, object]
) -> onnx.ModelProto:
    """ONNX encoder: uint8 image [N,1,288,128] -> z_mu, z_logvar float32 [N,latent_dim]."""
    check_weights(weights, spec)
    const = _Initializers()
    nodes = _conv_blocks(weights, const) + _heads(weights, const)
    d = spec.latent_dim
    graph = helper.make_graph(
        nodes,
        "legacy_encoder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", 1, INPUT_HEIGHT, INPUT_WIDTH])],
        [
            helper.make_tensor_value_info(MU_NAME, TensorProto.FLOAT, ["batch", d]),
            helper.make_tensor_value_info(LOGVAR_NAME, TensorProto.FLOAT, ["batch", d]),
        ],
        initializer=const.tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="morphlake")
    model.ir_version = 8  # readable by every onnxruntime >= 1.12
    helper.set_model_props(model, _properties(spec, metadata))
    onnx.checker.check_model(model)
    return model
