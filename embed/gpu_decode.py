"""--decode gpu: grey JPEG snips decoded by nvImageCodec on the GPU and resized there (embed.resize_graph, Pillow's
BILINEAR bit for bit), handed to the encoder without leaving the device; every other snip takes the legacy decode.

The CPU threads read, check and fingerprint each batch (prepare_chunk) and decode on the CPU what the GPU does not
take: PNGs, colour JPEGs (nvJPEG's grey is the Y channel, not Pillow's convert("L")), JPEGs without their end
marker (Pillow refuses truncated files; nvJPEG would decode them grey), and sizes other than the batch's commonest
one (one resize graph per batch). The thread that feeds the GPU then decodes the batch's JPEGs in one nvImageCodec
call and runs the resize graph (GpuDecoder.pixels). nvJPEG's IDCT is not libjpeg-turbo's, so a run checks this
decode against the legacy one on its own snips before it embeds (morphlake.steps.embed.decode_check).
"""

from __future__ import annotations

import collections
import ctypes
import functools
import importlib
import io
import time
from dataclasses import dataclass, field

import numpy as np
import onnxruntime as ort
from PIL import Image

from morphlake.common.extras import install_hint
from morphlake.embed import resize_graph as graph
from morphlake.embed.architecture import INPUT_HEIGHT, INPUT_WIDTH
from morphlake.embed.errors import DeviceUnavailable
from morphlake.embed.model import CPU, CUDA
from morphlake.embed.reader import DecodedBatch, SnipProblem, SnipRef, legacy_pixels, opened_snip, read_into

EXTRA = "gpu-decode"
JPEG_END = b"\xff\xd9"


@dataclass
class PreparedBatch(DecodedBatch):
    """A batch read and checked on a CPU thread: rows [0, n) are its snips; `jpegs` maps a row to the encoded grey
    JPEG the GPU decodes (its pixels row is zero until then), every other row is decoded already."""

    jpegs: dict[int, bytes] = field(default_factory=dict)
    jpeg_size: tuple[int, int] = (0, 0)  # (height, width) of every JPEG in `jpegs`


def prepare_chunk(chunk: list[SnipRef], batch_size: int) -> PreparedBatch:
    """Read, check (as the legacy decode checks) and fingerprint one batch; decode on this thread what the GPU
    does not take. Unreadable snips become failures, as in decode_chunk."""
    start = time.perf_counter()
    batch = PreparedBatch([], [], np.zeros((batch_size, 1, INPUT_HEIGHT, INPUT_WIDTH), np.uint8))
    candidates: dict[int, tuple[bytes, tuple[int, int]]] = {}

    def prepare(row: int, data: bytes) -> None:
        with opened_snip(data) as image:
            if image.format == "JPEG" and image.mode == "L" and data.rstrip(b"\0").endswith(JPEG_END):
                candidates[row] = (data, (image.height, image.width))
            else:
                batch.pixels[row, 0] = legacy_pixels(image)

    read_into(batch, chunk, prepare)
    hand_to_gpu(batch, candidates)
    batch.decode_s = time.perf_counter() - start
    return batch


def hand_to_gpu(batch: PreparedBatch, candidates: dict[int, tuple[bytes, tuple[int, int]]]) -> None:
    """Rows whose grey JPEG (bytes, (height, width)) the GPU may decode: those of the batch's commonest size go to
    it (one resize graph input shape per batch); the others are decoded here, the legacy way."""
    takes = [size for _, size in candidates.values() if graph.pillow_pass_order(*size)]  # resized as Pillow does
    if takes:
        batch.jpeg_size = collections.Counter(takes).most_common(1)[0][0]
    failed = []
    for row, (data, size) in candidates.items():
        if takes and size == batch.jpeg_size:
            batch.jpegs[row] = data
        elif not _decode_on_cpu(batch, row, data):
            failed.append(row)
    drop_rows(batch, failed)


def _decode_on_cpu(batch: PreparedBatch, row: int, data: bytes) -> bool:
    """Decode one row the legacy way; a snip that fails becomes a failure (the caller drops its row)."""
    try:
        with opened_snip(data) as image:
            batch.pixels[row, 0] = legacy_pixels(image)
        return True
    except SnipProblem as exc:
        batch.failures.append((batch.refs[row], str(exc)))
        return False


def drop_rows(batch: PreparedBatch, dropped: list[int]) -> dict[int, int]:
    """Remove the rows of snips that failed: the rows below move up (refs, fingerprints, pixels, jpegs), as in a
    batch where they never were. Returns old row -> new row for the rows kept."""
    gone = set(dropped)
    kept = [row for row in range(batch.n) if row not in gone]
    moved = {old: new for new, old in enumerate(kept)}
    if gone:
        batch.refs = [batch.refs[r] for r in kept]
        batch.fingerprints = [batch.fingerprints[r] for r in kept]
        batch.pixels[: len(kept)] = batch.pixels[kept]
        batch.pixels[len(kept) :] = 0
        batch.jpegs = {moved[r]: data for r, data in batch.jpegs.items() if r in moved}
    return moved


def nvimgcodec_module():
    """The nvImageCodec module, or DeviceUnavailable naming the extra that installs it."""
    try:
        nvimgcodec = importlib.import_module("nvidia.nvimgcodec")
    except ImportError:
        raise DeviceUnavailable(
            "decoding on the GPU needs nvImageCodec (the nvidia-nvimgcodec-cu13 package), which is not installed",
            f"{install_hint(EXTRA)}; or decode on the CPU",
        ) from None
    return nvimgcodec


@functools.cache
def _cuda_runtime() -> ctypes.CDLL:
    # onnxruntime-gpu has loaded the CUDA runtime (embed.model preloads it); dlopen finds it by its soname.
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise DeviceUnavailable(
        "decoding on the GPU: the CUDA runtime (libcudart), to wait for nvImageCodec's decode, is not loaded",
        "install the CUDA 13 runtime onnxruntime-gpu uses (pip install nvidia-cuda-runtime), or decode on the CPU",
    )


def _wait_for_stream(stream: int) -> None:
    status = _cuda_runtime().cudaStreamSynchronize(ctypes.c_void_p(stream))
    if status:
        raise DeviceUnavailable(f"CUDA failed while decoding on the GPU (cudaStreamSynchronize: error {status})")


class GpuDecoder:
    """nvImageCodec and the resize graph on one device. On "cuda" the pixels stay on the GPU; "cpu" runs the same
    code with nvImageCodec's CPU backend and onnxruntime's CPU provider (how the suite checks it without a GPU)."""

    def __init__(self, *, slots: int, device: str = "cuda"):
        self.slots, self.on_gpu = slots, device == "cuda"
        self.device = "cuda" if self.on_gpu else "cpu"
        self.decoder, self.params = _jpeg_decoder(on_gpu=self.on_gpu)
        self._providers = [(CUDA, {"device_id": 0}), CPU] if self.on_gpu else [CPU]
        self._sessions: dict[str, ort.InferenceSession] = {}
        self.provider = self._session("vertical").get_providers()[0]
        if self.on_gpu and self.provider != CUDA:
            raise DeviceUnavailable(
                f"decoding on the GPU: onnxruntime opened the resize graph on {self.provider}, not CUDA",
                "check the CUDA and cuDNN libraries match this onnxruntime-gpu, or decode on the CPU",
            )
        self._weights: dict[tuple[int, int, int], tuple[ort.OrtValue, ort.OrtValue]] = {}
        self._no_cpu_rows = ort.OrtValue.ortvalue_from_numpy(
            np.zeros((slots, 1, INPUT_HEIGHT, INPUT_WIDTH), np.uint8), self.device, 0
        )
        self._in_use: dict = {}  # the last batch's decoded images, alive until the next batch (kernels may still read)

    def _session(self, order: str) -> ort.InferenceSession:
        if order not in self._sessions:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            model = graph.resize_model(self.slots, order).SerializeToString()
            self._sessions[order] = ort.InferenceSession(model, options, providers=self._providers)
        return self._sessions[order]

    def pixels(self, batch: PreparedBatch) -> ort.OrtValue | np.ndarray:
        """The batch's pixels, uint8 [slots, 1, 288, 128]: an OrtValue on the decoder's device (the GPU's memory on
        CUDA), or the host array when no row came from a JPEG. A JPEG nvImageCodec cannot decode is decoded the
        legacy way (or becomes a failure, and its row leaves the batch)."""
        rows = sorted(batch.jpegs)
        images = self.decoder.decode([batch.jpegs[r] for r in rows], params=self.params) if rows else []
        if self.on_gpu and rows:
            _wait_for_stream(0)  # the decode ran on the default stream; onnxruntime reads on its own
        decoded = {row: image for row, image in zip(rows, images) if image is not None}
        failed = [r for r in rows if r not in decoded and not _decode_on_cpu(batch, r, batch.jpegs[r])]
        moved = drop_rows(batch, failed)
        decoded = {moved[r]: image for r, image in decoded.items()}
        self._in_use = decoded
        return self._resized(batch, decoded) if decoded else batch.pixels

    def _resized(self, batch: PreparedBatch, decoded: dict) -> ort.OrtValue:
        # the order is known: hand_to_gpu sends only sizes that have one
        session = self._session(graph.pillow_pass_order(*batch.jpeg_size) or "vertical")
        binding = session.io_binding()
        first = next(iter(decoded.values()))  # bound to the slots of rows decoded elsewhere (not read: from_images)
        pitches = {self._bind_image(binding, graph.image_name(s), decoded.get(s, first)) for s in range(self.slots)}
        if len(pitches) > 1:  # one graph input shape per batch; nvImageCodec pads rows of one size alike
            raise DeviceUnavailable(
                f"decoding on the GPU: images of one size came back with row pitches {sorted(pitches)}",
                "decode on the CPU, and report this nvImageCodec version",
            )
        rows_weights, columns_weights = self._weights_for(batch.jpeg_size, pitches.pop())
        binding.bind_ortvalue_input(graph.ROWS_NAME, rows_weights)
        binding.bind_ortvalue_input(graph.COLUMNS_NAME, columns_weights)
        from_images = np.zeros((self.slots, 1, 1, 1), bool)
        from_images[list(decoded)] = True
        if len(decoded) < batch.n:  # some rows were decoded on the CPU: their pixels go to the device too
            binding.bind_cpu_input(graph.CPU_ROWS_NAME, batch.pixels)
        else:
            binding.bind_ortvalue_input(graph.CPU_ROWS_NAME, self._no_cpu_rows)
        binding.bind_cpu_input(graph.FROM_IMAGES_NAME, from_images)
        binding.bind_output(graph.OUTPUT_NAME, self.device, 0)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def _bind_image(self, binding: ort.IOBinding, name: str, image) -> int:
        """Bind one decoded image (HWC, one channel) where it lies, rows padded to its pitch; returns the pitch."""
        if self.on_gpu:
            face = image.__cuda_array_interface__
            height, width, _ = face["shape"]
            pitch = face["strides"][0] if face.get("strides") else width
            if image.capacity < height * pitch:  # the last row's padding may not be allocated: read no further
                raise DeviceUnavailable(
                    f"decoding on the GPU: an image of {height} rows of {pitch} bytes holds only {image.capacity}",
                    "decode on the CPU, and report this nvImageCodec version",
                )
            binding.bind_input(name, "cuda", 0, np.uint8, [height, pitch], face["data"][0])
            return pitch
        pixels = np.ascontiguousarray(np.asarray(image)[..., 0])
        binding.bind_cpu_input(name, pixels)
        return pixels.shape[1]

    def _weights_for(self, size: tuple[int, int], pitch: int) -> tuple[ort.OrtValue, ort.OrtValue]:
        key = (*size, pitch)
        if key not in self._weights:
            height, width = size
            rows = graph.bilinear_weights(height, INPUT_HEIGHT)
            columns = graph.column_weights(width, pitch)
            self._weights[key] = (
                ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(rows), self.device, 0),
                ort.OrtValue.ortvalue_from_numpy(columns, self.device, 0),
            )
        return self._weights[key]


def _jpeg_decoder(*, on_gpu: bool):
    """nvImageCodec's decoder and grey decode parameters. On the GPU its GPU backends only, checked on one tiny grey
    JPEG to decode into device memory (without nvJPEG it would decode on the CPU, or not at all)."""
    nvimgcodec = nvimgcodec_module()
    params = nvimgcodec.DecodeParams(
        color_spec=nvimgcodec.ColorSpec.GRAY, allow_any_depth=False, apply_exif_orientation=False
    )
    try:
        if not on_gpu:
            cpu_only = nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY
            return nvimgcodec.Decoder(device_id=cpu_only, backends=[nvimgcodec.Backend(nvimgcodec.CPU_ONLY)]), params
        kinds = (nvimgcodec.HW_GPU_ONLY, nvimgcodec.GPU_ONLY, nvimgcodec.HYBRID_CPU_GPU)
        decoder = nvimgcodec.Decoder(device_id=0, backends=[nvimgcodec.Backend(kind) for kind in kinds])
        probe = io.BytesIO()
        Image.new("L", (INPUT_WIDTH, INPUT_HEIGHT), 128).save(probe, "JPEG")
        image = decoder.decode([probe.getvalue()], params=params)[0]
    except RuntimeError as exc:  # nvImageCodec raises RuntimeError for CUDA and library failures
        raise DeviceUnavailable(
            f"decoding on the GPU: nvImageCodec cannot start on this GPU ({exc})",
            f"check the NVIDIA driver and CUDA 13 libraries; {install_hint(EXTRA)}; or decode on the CPU",
        ) from None
    if image is None or image.buffer_kind != nvimgcodec.ImageBufferKind.STRIDED_DEVICE:
        raise DeviceUnavailable(
            "decoding on the GPU: nvImageCodec has no GPU JPEG decoder here (its nvJPEG library is missing)",
            f"{install_hint(EXTRA)} (it brings nvidia-nvjpeg); or decode on the CPU",
        )
    return decoder, params
