"""Seeded random weights for the demo encoder (same architecture, no PyTorch, clearly not trained)."""

from __future__ import annotations

import numpy as np

from morphlake.embed.architecture import EncoderSpec


def demo_weights(spec: EncoderSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised convolutions, plausible BatchNorm statistics, an orthogonal mean projection."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for key, shape in spec.expected_shapes().items():
        if key.startswith("conv_layers") and key.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            weights[key] = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif key.endswith("running_mean"):
            weights[key] = rng.normal(0.0, 0.1, shape)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 1.5, shape)
        elif key.startswith("conv_layers") and key.endswith(".weight"):  # BatchNorm gamma
            weights[key] = rng.uniform(0.8, 1.2, shape)
        elif key == "embedding.weight":
            q, r = np.linalg.qr(rng.normal(size=shape))
            weights[key] = q * np.sign(np.diag(r))
        elif key.endswith(".weight"):
            weights[key] = rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape)
        else:  # biases
            weights[key] = rng.normal(0.0, 0.01, shape)
    return {k: v.astype(np.float32) for k, v in weights.items()}


def demo_metadata(seed: int, model_name: str, background: int | None = None) -> dict[str, str]:
    """The demo encoder's metadata; `background` is the grey level its head biases were centred on."""
    centred = "" if background is None else f", head biases centred on a blank background of grey level {background}"
    meta = {
        "model_name": model_name,
        "weights": "demo",
        "weights_origin": f"DEMO WEIGHTS: seeded random (numpy default_rng seed {seed}){centred}; not a trained model",
        "demo_seed": str(seed),
    }
    if background is not None:
        meta["demo_background"] = str(background)
    return meta
