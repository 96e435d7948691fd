"""The lab's legacy embed path, reimplemented for comparison: PyTorch eager, DataLoader with 2 workers, batch 64."""

from __future__ import annotations

import numpy as np
from PIL import Image

from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH, EncoderSpec
from morphlake.embed.torch_reference import reference_module


def legacy_encoder(weights: dict[str, np.ndarray], spec: EncoderSpec = EncoderSpec(), *, device: str = "cpu"):
    """The PyTorch encoder with the given (state-dict layout) weights, in eval mode as the lab ran it, on `device`."""
    import torch

    module = reference_module(spec)
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=False)
    return module.to(device)


def legacy_embed(
    module, paths: list[str], batch_size: int = 64, workers: int = 2, *, with_logvar: bool = False, device: str = "cpu"
) -> np.ndarray:
    """z_mu of every snip the way the legacy script computes it (no torch.no_grad, as there); with_logvar:
    [z_mu | z_logvar] side by side, as the legacy store holds them. On `device` ("cuda": each batch copied there,
    as a GPU run of the script does)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Snips(Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            image = Image.open(paths[i]).convert("L").resize((INPUT_WIDTH, INPUT_HEIGHT), Image.BILINEAR)
            return torch.from_numpy(np.asarray(image, np.float32) / 255.0)[None]

    out = []
    for x in DataLoader(Snips(), batch_size=batch_size, num_workers=workers, pin_memory=device != "cpu"):
        mu, logvar = module(x.to(device))
        out.append((torch.cat([mu, logvar], dim=1) if with_logvar else mu).detach().cpu().numpy())
    return np.concatenate(out)
