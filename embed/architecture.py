"""The legacy SeqVAE encoder's architecture: shapes and state-dict keys (DESIGN §3)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The legacy bio/nuisance z names (sized by EncoderSpec.nuisance_dims), re-exported from the shared z grammar.
from morphlake.common.zcolumns import bio_nuisance_name as bio_nuisance_name

ARCHITECTURE = "morphseq_legacy_seqvae_encoder_v1"
INPUT_NAME, MU_NAME, LOGVAR_NAME = "image", "z_mu", "z_logvar"  # the ONNX file's input and outputs
INPUT_HEIGHT, INPUT_WIDTH = 288, 128
CHANNELS = (1, 16, 32, 64, 128, 256)
KERNEL, STRIDE, PADDING = 4, 2, 1
BN_EPS = 1e-5
PREPROCESSING = (
    "Pillow: open, convert('L'), resize to 128 wide x 288 high with BILINEAR, uint8; "
    "the graph casts to float and scales by 1/255"
)


@dataclass(frozen=True)
class EncoderSpec:
    """Sizes of one legacy encoder; latent_dim and zn_frac come from model_config.json."""

    latent_dim: int = 100
    zn_frac: float = 0.2

    @property
    def feature_hw(self) -> tuple[int, int]:
        h, w = INPUT_HEIGHT, INPUT_WIDTH
        for _ in CHANNELS[1:]:
            h, w = (h + 2 * PADDING - KERNEL) // STRIDE + 1, (w + 2 * PADDING - KERNEL) // STRIDE + 1
        return h, w

    @property
    def flat_features(self) -> int:
        h, w = self.feature_hw
        return CHANNELS[-1] * h * w

    @property
    def nuisance_dims(self) -> int:
        return math.floor(self.latent_dim * self.zn_frac)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """state-dict key -> shape (conv at conv_layers.{3i}, BatchNorm at conv_layers.{3i+1})."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (cin, cout) in enumerate(zip(CHANNELS[:-1], CHANNELS[1:])):
            conv, bn = f"conv_layers.{3 * i}", f"conv_layers.{3 * i + 1}"
            shapes[f"{conv}.weight"] = (cout, cin, KERNEL, KERNEL)
            shapes[f"{conv}.bias"] = (cout,)
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{bn}.{name}"] = (cout,)
        d, f = self.latent_dim, self.flat_features
        shapes.update(
            {
                "embedding0.weight": (d, f),
                "embedding0.bias": (d,),
                "embedding.weight": (d, d),
                "log_var.weight": (d, f),
                "log_var.bias": (d,),
            }
        )
        return shapes
