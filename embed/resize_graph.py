"""Pillow's BILINEAR resize of grey snips to the model input, as an ONNX graph that runs where the encoder runs.

Pillow resizes an 8-bit image in two passes, each a weighted sum over the taps of a triangle filter stretched over
the scale, with weights rounded to 22-bit fixed point and each pass rounded back to 8 bits. Written as two dense
matrices of those weights (float64, where every product and sum is exact), the graph gives Pillow's pixels bit for
bit, on any provider. Which pass Pillow runs first depends on its version and on the size (Pillow 13: vertical
first for 576x256, horizontal first below ~160 columns), so it is asked, once per size (pillow_pass_order).
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit resampling (32 - 8 - 2)
OUTPUT_NAME = "pixels"
ROWS_NAME, COLUMNS_NAME = "rows_weights", "columns_weights"
CPU_ROWS_NAME, FROM_IMAGES_NAME = "cpu_rows", "from_images"
OPSET = 17
ORDERS = ("vertical", "horizontal")  # which pass runs first


def image_name(slot: int) -> str:
    return f"image_{slot}"


@functools.lru_cache(maxsize=16)
def bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's BILINEAR weights from `in_size` samples to `out_size`, [out_size, in_size] float64, each row a
    sampled triangle of half-width max(scale, 1) around the output sample's centre, normalised, in fixed point."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    weights = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        taps = np.arange(first, last)
        tent = np.clip(1 - np.abs((taps - centre + 0.5) / support), 0, None)
        if tent.sum():
            tent = tent / tent.sum()
        # Pillow rounds each weight half away from zero to PRECISION_BITS (the weights here are never negative).
        weights[out, first:last] = np.floor(0.5 + tent * (1 << PRECISION_BITS))
    weights /= 1 << PRECISION_BITS
    weights.setflags(write=False)  # cached: shared by every caller
    return weights


def column_weights(width: int, pitch: int) -> np.ndarray:
    """The horizontal pass's [pitch, 128] matrix: rows past the image's width (a decoder's row padding) weigh 0."""
    weights = np.zeros((pitch, INPUT_WIDTH))
    weights[:width] = bilinear_weights(width, INPUT_WIDTH).T
    return weights


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, 255)


def resized(image: np.ndarray, order: str) -> np.ndarray:
    """The graph's arithmetic in numpy: one grey image, uint8 [h, w] -> [288, 128], passes in `order`."""
    rows = bilinear_weights(image.shape[0], INPUT_HEIGHT)
    columns = bilinear_weights(image.shape[1], INPUT_WIDTH).T
    pixels = image.astype(np.float64)
    if order == "vertical":
        return _rounded(_rounded(rows @ pixels) @ columns).astype(np.uint8)
    return _rounded(rows @ _rounded(pixels @ columns)).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def pillow_pass_order(height: int, width: int) -> str | None:
    """The pass the installed Pillow runs first for images of this size, found by resizing noise both ways and
    comparing with Pillow's own result; None when neither order gives Pillow's pixels (then the CPU decodes)."""
    noise = np.random.default_rng(height * 100_003 + width).integers(0, 256, (height, width), dtype=np.uint8)
    pillow = np.asarray(Image.fromarray(noise).resize((INPUT_WIDTH, INPUT_HEIGHT), Image.Resampling.BILINEAR))
    return next((order for order in ORDERS if np.array_equal(resized(noise, order), pillow)), None)


def resize_model(slots: int, order: str = "vertical"):
    """The graph for a batch of `slots` rows: inputs image_0 .. image_{slots-1} (uint8 [h, pitch], one size in a
    batch), rows_weights [288, h] and columns_weights [pitch, 128] (float64), cpu_rows (uint8 [slots, 1, 288, 128],
    rows decoded elsewhere) and from_images (bool [slots, 1, 1, 1]); output pixels, uint8 [slots, 1, 288, 128]:
    the resized image where from_images is true, else the cpu row. `order`: the pass that runs first."""
    from onnx import TensorProto, helper  # only --decode gpu builds this graph; the embed path loads no onnx

    first, second = ("vertical", "horizontal") if order == "vertical" else ("horizontal", "vertical")
    stacked = [helper.make_node("Unsqueeze", [image_name(s), "axis0"], [f"stacked_{s}"]) for s in range(slots)]
    nodes = [
        *stacked,
        helper.make_node("Concat", [f"stacked_{s}" for s in range(slots)], ["images"], axis=0),
        helper.make_node("Cast", ["images"], ["images_f64"], to=TensorProto.DOUBLE),
        *_pass(first, "images_f64"),
        *_pass(second, first),
        helper.make_node("Cast", [second], ["resized_u8"], to=TensorProto.UINT8),
        helper.make_node("Unsqueeze", ["resized_u8", "axis1"], ["resized"]),
        helper.make_node("Where", [FROM_IMAGES_NAME, "resized", CPU_ROWS_NAME], [OUTPUT_NAME]),
    ]
    constants = [
        helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("half", TensorProto.DOUBLE, [], [0.5]),
        helper.make_tensor("zero", TensorProto.DOUBLE, [], [0.0]),
        helper.make_tensor("top", TensorProto.DOUBLE, [], [255.0]),
    ]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, [slots, 1, INPUT_HEIGHT, INPUT_WIDTH])
    graph = helper.make_graph(nodes, "snip_resize", _inputs(slots), [output], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="morphlake")
    model.ir_version = 8
    return model


def _pass(which: str, source: str) -> list:
    """One pass, named `which` after its output: vertical [288, h] @ [n, h, columns], horizontal [n, rows, pitch] @
    [pitch, 128]; it ends as Pillow's does: + 0.5, floor (its arithmetic shift), clipped to 0..255."""
    from onnx import helper

    total = f"{which}_sum"
    operands = [ROWS_NAME, source] if which == "vertical" else [source, COLUMNS_NAME]
    return [
        helper.make_node("MatMul", operands, [total]),
        helper.make_node("Add", [total, "half"], [f"{which}_plus_half"]),
        helper.make_node("Floor", [f"{which}_plus_half"], [f"{which}_floor"]),
        helper.make_node("Max", [f"{which}_floor", "zero"], [f"{which}_low"]),
        helper.make_node("Min", [f"{which}_low", "top"], [which]),
    ]


def _inputs(slots: int) -> list:
    from onnx import TensorProto, helper

    u8, f64 = TensorProto.UINT8, TensorProto.DOUBLE
    return [
        *(helper.make_tensor_value_info(image_name(s), u8, ["height", "pitch"]) for s in range(slots)),
        helper.make_tensor_value_info(ROWS_NAME, f64, [INPUT_HEIGHT, "height"]),
        helper.make_tensor_value_info(COLUMNS_NAME, f64, ["pitch", INPUT_WIDTH]),
        helper.make_tensor_value_info(CPU_ROWS_NAME, u8, [slots, 1, INPUT_HEIGHT, INPUT_WIDTH]),
        helper.make_tensor_value_info(FROM_IMAGES_NAME, TensorProto.BOOL, [slots, 1, 1, 1]),
    ]
