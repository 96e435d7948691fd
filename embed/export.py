"""Export a trained encoder_reformatted.pt to ONNX and verify it against a PyTorch reference (`export` extra)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH, EncoderSpec
from morphlake.embed.build import trained_encoder_model
from morphlake.embed.errors import EncoderFileError
from morphlake.embed.model import Encoder, file_sha256
from morphlake.embed.onnx_graph import check_weights
from morphlake.embed.torch_reference import reference_module, torch_module

TOLERANCE = 1e-5


def read_config(path: Path) -> EncoderSpec:
    """model_config.json -> EncoderSpec (latent_dim, zn_frac), checking it describes this architecture."""
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise EncoderFileError(
            f"cannot read model config {path}: {exc}", "pass the model folder's model_config.json"
        ) from None
    name = config.get("name")
    if name not in (None, "SeqVAEConfig"):
        raise EncoderFileError(
            f"{path} is a {name!r} config; the legacy encoder is a SeqVAEConfig",
            "pass the model_config.json of a SeqVAE model",
        )
    input_dim = config.get("input_dim")
    if input_dim is not None and list(input_dim) != [1, INPUT_HEIGHT, INPUT_WIDTH]:
        raise EncoderFileError(
            f"{path} has input_dim {input_dim}; this encoder takes [1, 288, 128]",
            "only the 288x128 legacy encoder can be exported",
        )
    try:
        return EncoderSpec(latent_dim=int(config.get("latent_dim", 100)), zn_frac=float(config.get("zn_frac", 0.2)))
    except (TypeError, ValueError) as exc:
        raise EncoderFileError(f"{path}: latent_dim / zn_frac are not numbers ({exc})", "fix the config") from None


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """encoder_reformatted.pt (a plain state dict) -> numpy arrays."""
    torch = torch_module()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged or foreign files
        raise EncoderFileError(
            f"cannot load {path} as a PyTorch state dict ({type(exc).__name__}: {exc})",
            "pass encoder_reformatted.pt, the encoder's plain state dict",
        ) from None
    if not isinstance(state, dict) or not all(hasattr(v, "detach") for v in state.values()):
        raise EncoderFileError(
            f"{path} is not a plain state dict (name -> tensor)",
            "save it with torch.save(encoder.state_dict(), 'encoder_reformatted.pt')",
        )
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


@dataclass(frozen=True)
class ExportedEncoder:
    """A verified encoder built from a state dict: the ONNX model (the caller writes it), its name and how
    closely it matches the PyTorch reference."""

    model: onnx.ModelProto
    model_name: str
    max_relative_error: float


def verify_against_torch(
    onnx_path: Path, weights: dict[str, np.ndarray], spec: EncoderSpec, *, samples: int = 8, seed: int = 0
) -> float:
    """Largest relative error of the ONNX outputs against the PyTorch reference on random images."""
    torch = torch_module()
    module = reference_module(spec)
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, strict=False)
    pixels = np.random.default_rng(seed).integers(0, 256, (samples, 1, INPUT_HEIGHT, INPUT_WIDTH), dtype=np.uint8)
    with torch.no_grad():
        ref = module(torch.from_numpy(pixels).float() / 255.0)
    got = Encoder(onnx_path, device="cpu").run(pixels)
    return max(
        float(np.max(np.abs(g - r.numpy())) / max(float(np.max(np.abs(r.numpy()))), 1e-12)) for g, r in zip(got, ref)
    )


def export_encoder(state_dict: Path, config: Path, *, model_name: str | None = None) -> ExportedEncoder:
    """encoder_reformatted.pt + model_config.json -> a self-describing encoder, verified against the PyTorch
    reference of the architecture (EncoderFileError when it differs); nothing is written."""
    state_dict = Path(state_dict)
    spec = read_config(config)
    weights = load_state_dict(state_dict)
    check_weights(weights, spec)
    name = model_name or state_dict.absolute().parent.name
    origin = f"{state_dict.absolute()} (sha256 {file_sha256(state_dict)})"
    model = trained_encoder_model(weights, spec, name, origin=origin)
    with tempfile.TemporaryDirectory(prefix="morphlake-export-") as scratch:  # onnxruntime loads from a file
        unverified = Path(scratch) / "encoder.onnx"
        onnx.save_model(model, str(unverified))
        error = verify_against_torch(unverified, weights, spec)
    if not error <= TOLERANCE:
        raise EncoderFileError(
            f"the exported graph differs from the PyTorch reference (relative error {error:.2e} > {TOLERANCE:.0e})",
            "check the state dict is this architecture's (a plain state dict of the legacy encoder)",
        )
    return ExportedEncoder(model, name, error)
