"""Unit tests: the ONNX encoder graph against a numpy reference, the demo encoder, and file checks."""

import numpy as np
import onnx
import pytest
from reference_encoder import reference_encoder

from morphlake.embed.architecture import EncoderSpec
from morphlake.embed.build import demo_encoder_weights, save_model, write_demo_encoder
from morphlake.embed.demo_weights import demo_weights
from morphlake.embed.errors import DeviceUnavailable, EncoderFileError
from morphlake.embed.model import Encoder
from morphlake.embed.onnx_graph import build_encoder_model, check_weights
from morphlake.embed.precision import derive_encoder

SPEC = EncoderSpec()


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    return write_demo_encoder(tmp_path_factory.mktemp("enc") / "encoder.onnx", "m1", seed=7)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def test_onnx_graph_matches_numpy_reference(demo_file):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 1, 288, 128), dtype=np.uint8)
    mu, logvar = Encoder(demo_file, "cpu").run(pixels)
    ref_mu, ref_logvar = reference_encoder(demo_encoder_weights(SPEC, 7), pixels)
    assert mu.dtype == np.float32 and mu.shape == (3, 100) and logvar.shape == (3, 100)
    assert relative_error(mu, ref_mu) <= 1e-5
    assert relative_error(logvar, ref_logvar) <= 1e-5


def test_demo_encoder_is_reproducible_from_its_seed(tmp_path, demo_file):
    again = write_demo_encoder(tmp_path / "again.onnx", "m1", seed=7)
    other = write_demo_encoder(tmp_path / "other.onnx", "m1", seed=8)
    assert again.read_bytes() == demo_file.read_bytes()
    assert other.read_bytes() != demo_file.read_bytes()


def test_encoder_describes_itself_and_is_labelled_demo(demo_file):
    enc = Encoder(demo_file, "cpu")
    info = enc.info
    assert (info.model_name, info.latent_dim, info.zn_frac, info.nuisance_dims, info.weights) == (
        "m1",
        100,
        0.2,
        20,
        "demo",
    )
    assert "DEMO WEIGHTS" in info.metadata["weights_origin"]
    assert "BILINEAR" in info.metadata["preprocessing"]
    assert enc.provider == "CPUExecutionProvider"
    model = onnx.load(str(demo_file))
    assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 0
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_batch_size_does_not_change_results(demo_file):
    pixels = np.random.default_rng(1).integers(0, 256, (8, 1, 288, 128), dtype=np.uint8)
    enc = Encoder(demo_file, "cpu")
    whole, _ = enc.run(pixels)
    single = np.concatenate([enc.run(pixels[i : i + 1])[0] for i in range(8)])
    padded = enc.run(np.concatenate([pixels[:3], np.zeros_like(pixels[:5])]))[0][:3]
    threads1 = Encoder(demo_file, "cpu", threads=1).run(pixels)[0]
    assert np.max(np.abs(whole - single)) <= 1e-5
    assert np.max(np.abs(whole[:3] - padded)) <= 1e-5
    assert np.max(np.abs(whole - threads1)) <= 1e-5
    assert np.array_equal(whole, enc.run(pixels)[0])  # same input, same session: identical


def test_wrong_or_missing_weights_are_listed():
    weights = demo_weights(SPEC, 0)
    del weights["log_var.bias"]
    weights["embedding0.weight"] = weights["embedding0.weight"][:, :10]
    weights["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(EncoderFileError) as info:
        check_weights(weights, SPEC)
    text = str(info.value)
    assert "missing key 'log_var.bias'" in text
    assert "'embedding0.weight' has shape (100, 10), expected (100, 9216)" in text
    assert "unexpected key 'extra.weight'" in text


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(EncoderFileError, match="is not a loadable ONNX model"):
        Encoder(path, "cpu")
    with pytest.raises(EncoderFileError, match="encoder file not found"):
        Encoder(tmp_path / "nope.onnx", "cpu")


def test_file_without_metadata_is_refused(tmp_path, demo_file):
    model = onnx.load(str(demo_file))
    del model.metadata_props[:]
    path = tmp_path / "bare.onnx"
    onnx.save(model, str(path))
    with pytest.raises(
        EncoderFileError,
        match=r"lacks morphlake metadata \(architecture, latent_dim[^)]*\)\n"
        r"  hint: re-export the encoder so the file describes its model",
    ):
        Encoder(path, "cpu")


def test_wrong_input_shape_is_refused(tmp_path, demo_file):
    from onnx import TensorProto, helper, numpy_helper

    # A valid model with the right names and metadata, but a 16x8 input.
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Flatten", ["f"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["z_mu"]),
        helper.make_node("MatMul", ["flat", "w"], ["z_logvar"]),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 1, 16, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 100]) for n in ("z_mu", "z_logvar")],
        initializer=[numpy_helper.from_array(np.zeros((128, 100), np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {p.key: p.value for p in onnx.load(str(demo_file)).metadata_props})
    path = tmp_path / "shape.onnx"
    onnx.save(model, str(path))
    with pytest.raises(EncoderFileError, match=r"expected image tensor\(uint8\) \[N, 1, 288, 128\]"):
        Encoder(path, "cpu")


def test_cuda_requested_without_gpu_fails(demo_file, monkeypatch):
    import morphlake.embed.model as model_module

    monkeypatch.setattr(model_module, "cuda_driver_present", lambda: False)
    with pytest.raises(DeviceUnavailable, match="device cuda was asked for"):
        Encoder(demo_file, "cuda")
    assert Encoder(demo_file, "auto").provider == "CPUExecutionProvider"


@pytest.fixture(scope="module")
def valid_encoders(demo_file, tmp_path_factory):
    """Valid encoder files: the demo one, one rebuilt from other weights, one of another width, an fp16 copy."""
    folder = tmp_path_factory.mktemp("valid")
    rebuilt = build_encoder_model(demo_weights(SPEC, 0), SPEC, {"model_name": "x", "weights": "demo"})
    return {
        "demo": (demo_file, "m1", 100, "fp32"),
        "rebuilt": (save_model(rebuilt, folder / "rebuilt.onnx"), "x", 100, "fp32"),
        "latent16": (
            write_demo_encoder(folder / "d16.onnx", "d16", spec=EncoderSpec(latent_dim=16)),
            "d16",
            16,
            "fp32",
        ),
        "fp16": (save_model(derive_encoder(demo_file, "fp16"), folder / "fp16.onnx"), "m1", 100, "fp16"),
    }


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("which", ["demo", "rebuilt", "latent16", "fp16"])
def test_valid_encoders_load_and_run(valid_encoders, which, batch):
    path, model_name, latent_dim, precision = valid_encoders[which]
    enc = Encoder(path, "cpu")
    assert (enc.info.model_name, enc.info.latent_dim, enc.info.precision) == (model_name, latent_dim, precision)
    pixels = np.random.default_rng(batch).integers(0, 256, (batch, 1, 288, 128), dtype=np.uint8)
    mu, logvar = enc.run(pixels)
    assert mu.shape == logvar.shape == (batch, latent_dim)
    assert mu.dtype == logvar.dtype == np.float32  # fp16 too: it keeps the fp32 outputs
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(logvar))


def set_props(model: onnx.ModelProto, **changes: str | None) -> None:
    """Change morphlake.<key> metadata entries (None removes one)."""
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        props.pop(f"morphlake.{key}")
        if value is not None:
            props[f"morphlake.{key}"] = value
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)


def rename(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a graph input or output and every node's use of it."""
    for value in [*model.graph.input, *model.graph.output]:
        value.name = new if value.name == old else value.name
    for node in model.graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


INVALID_VARIANTS = {
    "other_architecture": (
        lambda m: set_props(m, architecture="other_v1"),
        r"is a 'other_v1' model, expected 'morphseq_legacy_seqvae_encoder_v1'",
    ),
    "no_model_name": (lambda m: set_props(m, model_name=None), r"lacks morphlake metadata \(model_name\)"),
    "float_input": (
        lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", onnx.TensorProto.FLOAT),
        r"has input\(s\) image tensor\(float\) .*expected image tensor\(uint8\) \[N, 1, 288, 128\]",
    ),
    "renamed_input": (
        lambda m: rename(m, "image", "img"),
        r"has input\(s\) img tensor\(uint8\) .*expected image tensor\(uint8\)",
    ),
    "renamed_output": (lambda m: rename(m, "z_logvar", "logvar"), r"expected z_mu and z_logvar \[N, 100\]"),
    "latent_dim_disagrees": (lambda m: set_props(m, latent_dim="16"), r"expected z_mu and z_logvar \[N, 16\]"),
}


@pytest.mark.parametrize("variant", sorted(INVALID_VARIANTS))
def test_encoder_refuses_invalid_variants(tmp_path, demo_file, variant):
    change, message = INVALID_VARIANTS[variant]
    model = onnx.load(str(demo_file))
    change(model)
    path = tmp_path / f"{variant}.onnx"
    onnx.save(model, str(path))
    with pytest.raises(EncoderFileError, match=message):
        Encoder(path, "cpu")


def test_graph_is_not_built_from_weights_of_another_width():
    with pytest.raises(EncoderFileError, match=r"do not match the legacy encoder architecture \(latent_dim 16\)"):
        build_encoder_model(demo_weights(SPEC, 0), EncoderSpec(latent_dim=16), {"model_name": "x", "weights": "demo"})


def test_demo_encoder_maps_blank_background_to_zero(demo_file):
    from morphlake.embed.build import DEMO_BACKGROUND

    blank = np.full((1, 1, 288, 128), DEMO_BACKGROUND, np.uint8)
    mu, logvar = Encoder(demo_file, "cpu").run(blank)
    assert np.max(np.abs(mu)) < 1e-4 and np.max(np.abs(logvar)) < 1e-4
    embryo_like = blank.copy()
    embryo_like[0, 0, 100:200, 50:80] = 120
    assert np.linalg.norm(Encoder(demo_file, "cpu").run(embryo_like)[0]) > 0.1
