"""Write encoder ONNX files: the seeded demo encoder, or one from a mapping of trained weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from embed.architecture import EncoderSpec
from embed.demo_weights import demo_metadata, demo_weights
from embed.onnx_graph import build_encoder_model


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write atomically (temp file then rename) so a crash never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    onnx.save_model(model, str(tmp))
    os.replace(tmp, path)
    return path


def write_demo_encoder(path: Path, model_name: str, seed: int = 0, spec: EncoderSpec = EncoderSpec()) -> Path:
    """The demo encoder: legacy architecture, seeded random weights, labelled DEMO in its metadata."""
    return save_model(build_encoder_model(demo_weights(spec, seed), spec, demo_metadata(seed, model_name)), path)


def write_trained_encoder(path: Path, weights: Mapping[str, np.ndarray], spec: EncoderSpec, model_name: str,
                          origin: str) -> Path:
    """An encoder from real weights (see embed.export for loading them from encoder_reformatted.pt)."""
    meta = {"model_name": model_name, "weights": "trained", "weights_origin": origin}
    return save_model(build_encoder_model(weights, spec, meta), path)
