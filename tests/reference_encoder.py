"""A plain numpy implementation of the legacy encoder (BatchNorm unfolded), to check the ONNX graph."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from morphlake.embed.architecture import BN_EPS, CHANNELS, KERNEL, PADDING, STRIDE


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.pad(x, ((0, 0), (0, 0), (PADDING, PADDING), (PADDING, PADDING)))
    windows = sliding_window_view(x, (KERNEL, KERNEL), axis=(2, 3))[:, :, ::STRIDE, ::STRIDE]
    return np.einsum("nchwij,ocij->nohw", windows, w, optimize=True) + b[None, :, None, None]


def reference_encoder(weights: dict[str, np.ndarray], pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N,1,288,128] -> (z_mu, z_logvar) in float64."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    x = pixels.astype(np.float64) / 255.0
    for i in range(len(CHANNELS) - 1):
        conv, bn = f"conv_layers.{3 * i}", f"conv_layers.{3 * i + 1}"
        x = conv2d(x, w[f"{conv}.weight"], w[f"{conv}.bias"])
        x = (x - w[f"{bn}.running_mean"][None, :, None, None]) / np.sqrt(
            w[f"{bn}.running_var"][None, :, None, None] + BN_EPS
        )
        x = x * w[f"{bn}.weight"][None, :, None, None] + w[f"{bn}.bias"][None, :, None, None]
        x = np.maximum(x, 0)
    flat = x.reshape(x.shape[0], -1)
    h = flat @ w["embedding0.weight"].T + w["embedding0.bias"]
    return h @ w["embedding.weight"].T, flat @ w["log_var.weight"].T + w["log_var.bias"]
