"""Write encoder ONNX files: the seeded demo encoder, or one from a mapping of trained weights."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from morphlake.common.durable import replace_durably
from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH, EncoderSpec
from morphlake.embed.demo_weights import demo_metadata, demo_weights
from morphlake.embed.onnx_graph import build_encoder_model

# The grey level of a blank snip that the demo encoder maps to z = 0: a parameter of the demo weights
# (write_demo_encoder, demo_encoder_weights), recorded in the file's metadata (demo_background). The demo's
# snip drawing (morphlake.demo.images) takes its background from here, so there is one value.
DEMO_BACKGROUND = 205


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write atomically and durably (a hidden temporary, fsynced, then renamed) so a crash never leaves half a
    model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        onnx.save_model(model, str(tmp))
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _centre_on_background(
    weights: dict[str, np.ndarray], spec: EncoderSpec, metadata: dict, *, background: int
) -> dict[str, np.ndarray]:
    """Shift the head biases so a blank brightfield background (grey level `background`) encodes to z = 0.

    Random weights otherwise map every image to nearly the same direction (the background dominates),
    and the demo's nearest-neighbour and embedding-map examples would show nothing.
    """
    import onnxruntime as ort

    model = build_encoder_model(weights, spec, metadata)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    blank = np.full((1, 1, INPUT_HEIGHT, INPUT_WIDTH), background, np.uint8)
    mu, logvar = session.run(None, {"image": blank})
    centred = dict(weights)
    # z_mu = (h) @ E.T with E orthogonal, so the pre-projection offset is mu @ E.
    centred["embedding0.bias"] = (weights["embedding0.bias"] - mu[0] @ weights["embedding.weight"]).astype(np.float32)
    centred["log_var.bias"] = (weights["log_var.bias"] - logvar[0]).astype(np.float32)
    return centred


def demo_encoder_weights(spec: EncoderSpec, seed: int, background: int = DEMO_BACKGROUND) -> dict[str, np.ndarray]:
    """The weights a demo encoder file holds (seeded, then centred on a blank image of grey level `background`)."""
    if not 0 <= background <= 255:
        raise ValueError(f"background is a grey level from 0 to 255, not {background}")
    return _centre_on_background(demo_weights(spec, seed), spec, demo_metadata(seed, "demo"), background=background)


def write_demo_encoder(
    path: Path,
    model_name: str,
    seed: int = 0,
    *,
    spec: EncoderSpec = EncoderSpec(),
    background: int = DEMO_BACKGROUND,
) -> Path:
    """The demo encoder: legacy architecture, seeded random weights, labelled DEMO in its metadata.

    background: the grey level of the snips' blank background, which the encoder maps to z = 0.
    """
    weights = demo_encoder_weights(spec, seed, background)
    return save_model(build_encoder_model(weights, spec, demo_metadata(seed, model_name, background)), path)


def trained_encoder_model(
    weights: Mapping[str, np.ndarray], spec: EncoderSpec, model_name: str, *, origin: str
) -> onnx.ModelProto:
    """An encoder from real weights (see embed.export for loading them from encoder_reformatted.pt)."""
    meta = {"model_name": model_name, "weights": "trained", "weights_origin": origin}
    return build_encoder_model(weights, spec, meta)
