"""The legacy encoder as a PyTorch module (`export` extra); imports nothing heavier than PyTorch itself."""

from __future__ import annotations

from typing import Any

from morphlake.common.extras import install_hint
from morphlake.embed.architecture import CHANNELS, KERNEL, PADDING, STRIDE, EncoderSpec
from morphlake.embed.errors import EmbedError


def torch_module():
    """PyTorch, or an EmbedError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise EmbedError(
            "exporting an encoder from its PyTorch weights needs PyTorch, which is not installed",
            install_hint("export"),
        ) from None
    return torch


def reference_module(spec: EncoderSpec):
    """The legacy encoder in PyTorch, with the state-dict layout of encoder_reformatted.pt."""
    torch = torch_module()
    nn: Any = torch.nn  # PyTorch comes at run time (torch_module), so the class's base is dynamic

    class LegacyEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for cin, cout in zip(CHANNELS[:-1], CHANNELS[1:]):
                layers += [nn.Conv2d(cin, cout, KERNEL, STRIDE, PADDING), nn.BatchNorm2d(cout), nn.ReLU()]
            self.conv_layers = nn.Sequential(*layers)
            self.embedding0 = nn.Linear(spec.flat_features, spec.latent_dim)
            self.embedding = nn.Linear(spec.latent_dim, spec.latent_dim, bias=False)
            self.log_var = nn.Linear(spec.flat_features, spec.latent_dim)

        def forward(self, x):
            h = self.conv_layers(x).reshape(x.shape[0], -1)
            return self.embedding(self.embedding0(h)), self.log_var(h)

    return LegacyEncoder().eval()
