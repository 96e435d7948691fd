"""--decode gpu without a GPU: the resize graph against Pillow, nvImageCodec's CPU backend through the same code the
GPU runs (prepare, decode, resize, encoder on bound values), the legacy checks and failures, the check against the
legacy decode, and the refusals where there is no GPU, no extra or the ray engine."""

import sys

import numpy as np
import pytest
from PIL import Image
from test_embed_cli import embeddings, last_record

from morphlake.embed import resize_graph
from morphlake.embed.build import write_demo_encoder
from morphlake.embed.errors import DeviceUnavailable
from morphlake.embed.gpu_decode import GpuDecoder, nvimgcodec_module, prepare_chunk
from morphlake.embed.model import Encoder
from morphlake.embed.reader import SnipRef, decode_chunk
from morphlake.embed.runner import embed_snips
from morphlake.steps.embed.options import GPU_DECODE_ON_CPU

pytest.importorskip("nvidia.nvimgcodec")  # the dev extra installs it; its CPU backend needs no GPU
SIZES = [(576, 256), (1152, 512), (580, 258), (288, 128), (600, 266), (331, 150), (225, 100)]


def noisy(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(128, 60, shape).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", SIZES)
def test_the_resize_graph_is_pillows_bilinear_bit_for_bit(shape):
    """In the pass order the installed Pillow takes at that size (Pillow 13: horizontal first below ~160 columns);
    rows padded past the width (a GPU decoder's pitch) weigh nothing; cpu rows pass through where asked."""
    import onnxruntime as ort

    order = resize_graph.pillow_pass_order(*shape)
    assert order in resize_graph.ORDERS
    model = resize_graph.resize_model(3, order).SerializeToString()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    images = [noisy(shape, seed) for seed in range(3)]
    pitch = shape[1] + 9
    feeds = {resize_graph.image_name(i): np.pad(a, ((0, 0), (0, 9)), constant_values=255) for i, a in enumerate(images)}
    cpu_rows = np.full((3, 1, 288, 128), 7, np.uint8)
    feeds |= {
        resize_graph.ROWS_NAME: resize_graph.bilinear_weights(shape[0], 288),
        resize_graph.COLUMNS_NAME: resize_graph.column_weights(shape[1], pitch),
        resize_graph.CPU_ROWS_NAME: cpu_rows,
        resize_graph.FROM_IMAGES_NAME: np.array([True, False, True]).reshape(3, 1, 1, 1),
    }
    out = session.run(None, feeds)[0]
    pillow = [np.asarray(Image.fromarray(a).resize((128, 288), Image.Resampling.BILINEAR)) for a in images]
    assert np.array_equal(out[0, 0], pillow[0]) and np.array_equal(out[2, 0], pillow[2])
    assert np.array_equal(out[1], cpu_rows[1])


def snip_files(folder):
    """Every kind of snip a batch can hold: grey JPEGs of the common size and of another, a colour JPEG, a PNG,
    a truncated JPEG and a file that is no image."""
    refs = []

    def save(name, image, fmt):
        path = folder / name
        image.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        refs.append(SnipRef(name, "2024_01_01", str(path)))

    for i in range(6):
        save(f"grey{i}.jpg", Image.fromarray(noisy((576, 256), i)), "JPEG")
    save("large.jpg", Image.fromarray(noisy((1152, 512), 7)), "JPEG")
    save("colour.jpg", Image.fromarray(noisy((576, 256), 8)).convert("RGB"), "JPEG")
    save("snip.png", Image.fromarray(noisy((576, 256), 9)), "PNG")
    (folder / "cut.jpg").write_bytes((folder / "grey0.jpg").read_bytes()[:4000])
    (folder / "junk.jpg").write_bytes(b"not an image")
    refs += [
        SnipRef("cut", "2024_01_01", str(folder / "cut.jpg")),
        SnipRef("junk", "2024_01_01", str(folder / "junk.jpg")),
    ]
    return refs


def test_prepare_sends_only_complete_grey_jpegs_of_the_commonest_size_to_the_gpu(tmp_path):
    refs = snip_files(tmp_path)
    batch = prepare_chunk(refs, 16)
    assert [r.snip_id for r in batch.refs] == [r.snip_id for r in refs[:9]]
    assert sorted(batch.jpegs) == list(range(6)) and batch.jpeg_size == (576, 256)
    legacy = decode_chunk(refs, 16)
    assert np.array_equal(batch.pixels[6:9], legacy.pixels[6:9])  # the large, colour and PNG snips: on the CPU
    assert batch.fingerprints == legacy.fingerprints
    assert [r.snip_id for r, _ in batch.failures] == ["cut", "junk"]
    assert "truncated" in batch.failures[0][1] and "not a readable image" in batch.failures[1][1]


def test_the_decoder_gives_the_legacy_pixels_and_embeddings(tmp_path):
    """On nvImageCodec's CPU backend (libjpeg-turbo) every pixel is the legacy one; on a GPU, nvJPEG's IDCT makes
    small differences, which the run's check measures."""
    refs = snip_files(tmp_path)
    encoder = Encoder(write_demo_encoder(tmp_path / "encoder.onnx", "gpu_decode"), device="cpu")
    decoder = GpuDecoder(slots=4, device="cpu")
    batch = prepare_chunk(refs[:4], 4)
    assert np.array_equal(decoder.pixels(batch).numpy(), decode_chunk(refs[:4], 4).pixels)

    legacy = list(embed_snips(refs, encoder, 4, workers=2))
    fast = list(embed_snips(refs, encoder, 4, workers=2, gpu_decoder=decoder))
    assert [[r.snip_id for r in b.refs] for b in fast] == [[r.snip_id for r in b.refs] for b in legacy]
    assert all(np.array_equal(a.z_mu, b.z_mu) and np.array_equal(a.z_logvar, b.z_logvar) for a, b in zip(legacy, fast))
    assert [f[0].snip_id for b in fast for f in b.failures] == ["cut", "junk"]


def test_a_jpeg_the_gpu_cannot_decode_takes_the_legacy_path_or_leaves_the_batch(tmp_path, monkeypatch):
    refs = snip_files(tmp_path)
    decoder = GpuDecoder(slots=4, device="cpu")
    real = decoder.decoder

    class Refusing:  # nvImageCodec answers None for a stream it cannot decode
        def decode(self, streams, params):
            return [None] + real.decode(streams[1:], params=params)

    decoder.decoder = Refusing()
    batch = prepare_chunk(refs[:4], 4)
    assert np.array_equal(decoder.pixels(batch).numpy(), decode_chunk(refs[:4], 4).pixels)  # Pillow decoded it

    from morphlake.embed import gpu_decode
    from morphlake.embed.reader import SnipProblem

    def damaged(image):  # Pillow cannot read the scan either
        raise SnipProblem("image data is damaged or truncated (broken data stream)")

    monkeypatch.setattr(gpu_decode, "legacy_pixels", damaged)
    batch = prepare_chunk(refs[:4], 4)
    pixels = decoder.pixels(batch).numpy()
    assert [r.snip_id for r in batch.refs] == ["grey1.jpg", "grey2.jpg", "grey3.jpg"]
    assert batch.failures == [(refs[0], "image data is damaged or truncated (broken data stream)")]
    assert len(batch.fingerprints) == 3 and np.array_equal(pixels[:3], decode_chunk(refs[1:4], 3).pixels)
    assert not pixels[3].any()


def test_embed_decode_gpu_runs_checks_and_records_on_the_cpu_backend(cli, ingested, encoder_path, monkeypatch):
    assert cli("embed", "--model", encoder_path, "--lake", ingested).exit_code == 0
    legacy = embeddings(ingested).filter(source="onnx")
    monkeypatch.setenv(GPU_DECODE_ON_CPU, "1")
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu")
    assert result.exit_code == 0, result.output
    fast = embeddings(ingested).filter(source="onnx")
    assert set(fast["embed_options"]) == {"decode=gpu"}  # a different decode: re-embedded, recorded
    z = [c for c in fast.columns if c.startswith("z_")]
    assert fast.select("snip_id", *z).equals(legacy.select("snip_id", *z))  # libjpeg-turbo on both sides
    record = last_record(ingested)
    check = record["embed_options"]["decode_check"]
    assert check["snips"] == 8 and check["identical"] == 8 and check["min_cosine"] == 1.0
    assert record["engine"]["jpeg_decode"] == {"by": "nvImageCodec", "on": "cpu", "resize_on": "CPUExecutionProvider"}


def test_a_gpu_decode_that_drifts_below_the_bound_is_refused_and_nothing_is_embedded(
    cli, ingested, encoder_path, monkeypatch
):
    import onnxruntime as ort

    from morphlake.embed import gpu_decode

    real = gpu_decode.GpuDecoder._resized

    def inverted(self, batch, decoded):  # a decoder that gets every pixel wrong
        return ort.OrtValue.ortvalue_from_numpy(255 - real(self, batch, decoded).numpy())

    monkeypatch.setattr(gpu_decode.GpuDecoder, "_resized", inverted)
    monkeypatch.setenv(GPU_DECODE_ON_CPU, "1")
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu")
    assert result.exit_code == 1
    assert "--decode gpu drifts from the legacy decode on this run's snips: smallest cosine" in result.stderr
    assert "on 8 snips, below the bound 0.99" in result.stderr and "embed with --decode legacy" in result.stderr
    assert (
        not list((ingested / "embeddings").rglob("*.parquet")) or embeddings(ingested).filter(source="onnx").is_empty()
    )


def test_decode_gpu_is_refused_without_a_gpu_or_the_extra(cli, ingested, encoder_path, monkeypatch, ray_address):
    asked = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu", "--device", "cpu")
    assert asked.exit_code == 1 and "--decode gpu decodes JPEG snips on the GPU, and there is none here" in asked.stderr
    auto = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu")
    assert auto.exit_code == 1 and "(--device auto opened the encoder on CPUExecutionProvider)" in auto.stderr
    assert "snip(s) to embed" not in auto.output  # refused before the run plans anything
    ray = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu", "--engine", "ray")
    assert ray.exit_code == 1 and "there is none here (the encoder actors on the Ray instance" in ray.stderr

    monkeypatch.setitem(sys.modules, "nvidia.nvimgcodec", None)  # the extra not installed
    with pytest.raises(DeviceUnavailable, match="needs nvImageCodec") as missing:
        nvimgcodec_module()
    assert "install the gpu-decode extra: pip install 'nvidia-nvimgcodec-cu13[nvjpeg]" in str(missing.value)
    monkeypatch.setenv(GPU_DECODE_ON_CPU, "1")
    result = cli("embed", "--model", encoder_path, "--lake", ingested, "--decode", "gpu")
    assert result.exit_code == 1 and "gpu-decode extra" in result.stderr
    assert "snip(s) to embed" not in result.output  # refused before the run plans anything


def test_a_snip_of_another_size_that_fails_on_the_cpu_leaves_the_batch(tmp_path, monkeypatch):
    """Rows of a size the batch's GPU graph does not take are decoded on the CPU as they are handed out; one that
    fails there leaves the batch, and the rows below move up."""
    from morphlake.embed import gpu_decode
    from morphlake.embed.reader import SnipProblem

    refs = snip_files(tmp_path)
    mixed = [refs[6], refs[0], refs[1]]  # the large grey JPEG first, then two of the common size

    def damaged(image):
        raise SnipProblem("image data is damaged or truncated (broken data stream)")

    monkeypatch.setattr(gpu_decode, "legacy_pixels", damaged)
    batch = prepare_chunk(mixed, 4)
    assert [r.snip_id for r in batch.refs] == ["grey0.jpg", "grey1.jpg"] and sorted(batch.jpegs) == [0, 1]
    assert [r.snip_id for r, _ in batch.failures] == ["large.jpg"] and len(batch.fingerprints) == 2
    pixels = GpuDecoder(slots=4, device="cpu").pixels(batch).numpy()
    assert np.array_equal(pixels[:2], decode_chunk(refs[:2], 2).pixels) and not pixels[2:].any()


def test_the_decode_check_pairs_each_snip_with_its_own_embedding_when_a_row_leaves(tmp_path, monkeypatch):
    """A JPEG that fails on the GPU and on the CPU leaves the batch; the snips below it move up a row, and the
    check still compares each snip with itself (identical decodes: cosine 1)."""
    from morphlake.embed import gpu_decode
    from morphlake.embed.reader import SnipProblem
    from morphlake.steps.embed.decode_check import check_decode

    refs = snip_files(tmp_path)[:4]
    encoder = Encoder(write_demo_encoder(tmp_path / "encoder.onnx", "gpu_decode"), device="cpu")
    decoder = GpuDecoder(slots=4, device="cpu")
    real_decode, real_pixels = decoder.decoder, gpu_decode.legacy_pixels

    class RefusingTheSecond:
        def decode(self, streams, params):
            return [real_decode.decode([s], params=params)[0] if i != 1 else None for i, s in enumerate(streams)]

    def legacy_refusing_the_second(image):
        if image.size == (256, 576) and np.array_equal(np.asarray(image), np.asarray(Image.open(refs[1].path))):
            raise SnipProblem("image data is damaged or truncated (broken data stream)")
        return real_pixels(image)

    decoder.decoder = RefusingTheSecond()
    monkeypatch.setattr(gpu_decode, "legacy_pixels", legacy_refusing_the_second)
    figures = check_decode(encoder, refs, decode="gpu", batch_size=4, min_cosine=0.99, gpu_decoder=decoder)
    assert figures["snips"] == 3 and figures["identical"] == 3 and figures["min_cosine"] == 1.0


def test_the_gpu_decoder_says_why_it_cannot_start_where_there_is_no_gpu():
    from morphlake.embed.model import cuda_driver_present

    if cuda_driver_present():
        pytest.skip("a GPU is here")
    with pytest.raises(DeviceUnavailable, match="nvImageCodec cannot start on this GPU") as raised:
        GpuDecoder(slots=2, device="cuda")
    assert "or decode on the CPU" in raised.value.hint
