"""Export round trip: a PyTorch state dict -> ONNX, checked against the PyTorch reference (`export` extra)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from morphlake.embed.architecture import EncoderSpec  # noqa: E402
from morphlake.embed.model import Encoder  # noqa: E402
from morphlake.embed.torch_reference import reference_module  # noqa: E402

pytestmark = pytest.mark.export
MODEL = "20241107_ds_sweep01_optimum"


@pytest.fixture
def model_dir(tmp_path):
    """A model folder like the lab's: encoder_reformatted.pt (random but trained-looking) + model_config.json."""
    folder = tmp_path / "models" / "legacy" / MODEL
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    module = reference_module(EncoderSpec())
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    torch.save(module.state_dict(), folder / "encoder_reformatted.pt")
    (folder / "model_config.json").write_text('{"name": "SeqVAEConfig", "latent_dim": 100, "zn_frac": 0.2}')
    return folder


def test_export_matches_torch_reference(cli, model_dir):
    out = model_dir / "encoder.onnx"
    result = cli("export-onnx", "--state-dict", model_dir / "encoder_reformatted.pt")
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (model {MODEL}" in result.output and "relative error of" in result.output
    enc = Encoder(out, "cpu")
    assert enc.info.weights == "trained" and enc.info.model_name == MODEL
    assert "encoder_reformatted.pt (sha256" in enc.info.metadata["weights_origin"]

    module = reference_module(EncoderSpec())
    module.load_state_dict(torch.load(model_dir / "encoder_reformatted.pt", weights_only=True))
    pixels = np.random.default_rng(3).integers(0, 256, (5, 1, 288, 128), dtype=np.uint8)
    with torch.no_grad():
        ref_mu, ref_lv = (t.numpy() for t in module(torch.from_numpy(pixels).float() / 255))
    mu, lv = enc.run(pixels)
    assert np.max(np.abs(mu - ref_mu)) / np.max(np.abs(ref_mu)) <= 1e-5
    assert np.max(np.abs(lv - ref_lv)) / np.max(np.abs(ref_lv)) <= 1e-5


def test_existing_output_needs_overwrite_and_model_name_option(cli, model_dir, tmp_path):
    out = tmp_path / "enc.onnx"
    out.write_bytes(b"keep me")
    args = ["export-onnx", "--state-dict", model_dir / "encoder_reformatted.pt", "-o", out, "--model-name", "m2"]
    refused = cli(*args)
    assert refused.exit_code == 1 and "already exists" in refused.stderr and "--overwrite" in refused.stderr
    assert out.read_bytes() == b"keep me"
    assert cli(*args, "--overwrite").exit_code == 0
    assert Encoder(out, "cpu").info.model_name == "m2"


def test_wrong_keys_are_a_clear_error_and_write_nothing(cli, model_dir):
    state = torch.load(model_dir / "encoder_reformatted.pt", weights_only=True)
    state["log_variance.weight"] = state.pop("log_var.weight")
    torch.save(state, model_dir / "encoder_reformatted.pt")
    result = cli("export-onnx", "--state-dict", model_dir / "encoder_reformatted.pt")
    assert result.exit_code == 1
    assert "missing key 'log_var.weight'" in result.stderr and "unexpected key 'log_variance.weight'" in result.stderr
    assert not list(model_dir.glob("*.onnx")) and not list(model_dir.glob(".*"))


def test_not_a_state_dict(cli, model_dir):
    (model_dir / "encoder_reformatted.pt").write_bytes(b"not a torch file")
    result = cli("export-onnx", "--state-dict", model_dir / "encoder_reformatted.pt")
    assert result.exit_code == 1 and "cannot load" in result.stderr and "plain state dict" in result.stderr


def test_latent_dim_comes_from_the_config(cli, model_dir):
    (model_dir / "model_config.json").write_text('{"name": "SeqVAEConfig", "latent_dim": 64, "zn_frac": 0.2}')
    result = cli("export-onnx", "--state-dict", model_dir / "encoder_reformatted.pt")
    assert result.exit_code == 1 and "(latent_dim 64)" in result.stderr and "expected (64, 9216)" in result.stderr
