"""Load a morphlake ONNX encoder, check it describes itself, and run it on a chosen provider."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import threading
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from morphlake.embed.architecture import ARCHITECTURE, INPUT_HEIGHT, INPUT_NAME, INPUT_WIDTH, LOGVAR_NAME, MU_NAME
from morphlake.embed.errors import DeviceUnavailable, EncoderFileError

log = logging.getLogger("morphlake.embed")
DEVICES = ("auto", "cpu", "cuda")
REQUIRED_METADATA = ("architecture", "latent_dim", "zn_frac", "model_name", "weights", "preprocessing")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
WEIGHTS = ("trained", "demo")
PRECISIONS = ("fp32", "fp16", "int8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cuda_driver_present() -> bool:
    """True when the NVIDIA driver library loads (cheap check before asking ORT for CUDA). Where it does, the CUDA
    and cuDNN libraries are preloaded from the environment's nvidia-* packages (or PyTorch's) when onnxruntime can,
    so its CUDA provider finds them without LD_LIBRARY_PATH."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    _preload_cuda_libraries()
    return True


@functools.cache
def _preload_cuda_libraries() -> None:
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime-gpu 1.21 and later
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # the libraries may be on the loader's path already; the session says if not
        log.debug("onnxruntime.preload_dlls() did not load the CUDA libraries: %s", exc)


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder file says about itself."""

    path: Path
    sha256: str
    model_name: str
    _: KW_ONLY
    latent_dim: int
    zn_frac: float
    nuisance_dims: int
    weights: str  # "trained" or "demo"
    precision: str = "fp32"  # fp16 / int8 for a copy made by embed.precision
    source_sha256: str = ""  # the fp32 encoder a reduced-precision copy was derived from (else sha256)
    metadata: dict[str, str] = field(repr=False, default_factory=dict)


def _providers(device: str) -> list:
    if device not in DEVICES:
        raise DeviceUnavailable(f"unknown device {device!r}", f"choose one of: {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if device == "cuda":
        if CUDA not in available:
            raise DeviceUnavailable(
                f"device cuda was asked for, but this onnxruntime ({ort.__version__}) has no CUDA provider "
                f"(available: {', '.join(available)})",
                "install onnxruntime-gpu, or run on the CPU",
            )
        if not cuda_driver_present():
            raise DeviceUnavailable(
                "device cuda was asked for, but no NVIDIA driver (libcuda.so.1) is present",
                "run on a machine with an NVIDIA GPU, or on the CPU",
            )
        return [(CUDA, {"device_id": 0}), CPU]
    return [(CUDA, {"device_id": 0}), CPU] if CUDA in available and cuda_driver_present() else [CPU]


class Encoder:
    """A loaded encoder session; stateless per batch, so it can run in any worker."""

    def __init__(self, path: Path | str, device: str = "auto", threads: int = 1):
        """threads: onnxruntime intra-op threads per run (0: its default, one per core). The default 1
        suits embed_snips on the CPU, which runs one batch per core side by side."""
        self.path = Path(path)
        if not self.path.is_file():
            raise EncoderFileError(
                f"encoder file not found: {self.path}",
                "check the path: an encoder is a self-describing .onnx file exported from the model's weights",
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle onnxruntime threads would otherwise spin for work and starve the decode threads
        # that share the cores (measured: +15-20% pipeline images/s on 2 cores, benchmarks/embed.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=_providers(device))
        except DeviceUnavailable:
            raise
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise EncoderFileError(
                f"{self.path} is not a loadable ONNX model ({type(exc).__name__}: {exc})",
                "the file is damaged or not ONNX; re-export the encoder from its weights",
            ) from exc
        self.provider = self.session.get_providers()[0]
        if device == "cuda" and self.provider != CUDA:
            raise DeviceUnavailable(
                f"device cuda was asked for, but onnxruntime fell back to {self.provider}",
                "check the CUDA and cuDNN libraries match this onnxruntime-gpu, or run on the CPU",
            )
        self.info = self._describe()
        self._binding: ort.IOBinding | None = None  # IO binding, made on the first bound run (_run_bound)
        self._input: ort.OrtValue | None = None  # the device copy of the last host batch, reused while its shape holds
        self._outputs: dict[str, ort.OrtValue] = {}  # z_mu and z_logvar on the device, reused while the batch holds
        self._bound = threading.Lock()  # one binding and one set of buffers: one bound run at a time

    def _describe(self) -> EncoderInfo:
        meta = self.session.get_modelmeta().custom_metadata_map
        props = {k.removeprefix("morphlake."): v for k, v in meta.items() if k.startswith("morphlake.")}
        missing = [k for k in REQUIRED_METADATA if k not in props]
        if missing:
            raise EncoderFileError(
                f"{self.path} lacks morphlake metadata ({', '.join(missing)})",
                "re-export the encoder so the file describes its model",
            )
        if props["architecture"] != ARCHITECTURE:
            raise EncoderFileError(
                f"{self.path} is a {props['architecture']!r} model, expected {ARCHITECTURE!r}",
                "use an encoder exported by this version of morphlake",
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape_ok = (
            len(inputs) == 1
            and inputs[0].name == INPUT_NAME
            and inputs[0].type == "tensor(uint8)"
            and list(inputs[0].shape[1:]) == [1, INPUT_HEIGHT, INPUT_WIDTH]
        )
        if not shape_ok:
            got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)
            raise EncoderFileError(
                f"{self.path} has input(s) {got}; expected image tensor(uint8) [N, 1, 288, 128]",
                "re-export the encoder from its weights; this file's graph is not the legacy encoder's",
            )
        dim = int(self._checked(props, "latent_dim"))
        names = {o.name: o.shape for o in outputs}
        if set(names) != {MU_NAME, LOGVAR_NAME} or any(s[-1] != dim for s in names.values()):
            raise EncoderFileError(
                f"{self.path} has outputs {names}; expected z_mu and z_logvar [N, {dim}]",
                "re-export the encoder from its weights; this file's graph is not the legacy encoder's",
            )
        zn_frac = float(self._checked(props, "zn_frac"))
        nuisance = int(self._checked(props, "nuisance_dims", dim=dim, zn_frac=zn_frac))
        for key, allowed in (("weights", WEIGHTS), ("precision", PRECISIONS)):
            self._checked(props, key, allowed=allowed)
        sha = file_sha256(self.path)
        return EncoderInfo(
            self.path,
            sha,
            props["model_name"],
            latent_dim=dim,
            zn_frac=zn_frac,
            nuisance_dims=nuisance,
            weights=props["weights"],
            precision=props.get("precision", "fp32"),
            source_sha256=props.get("derived_from_sha256", sha),
            metadata=props,
        )

    def _checked(
        self, props: dict[str, str], key: str, *, dim: int = 0, zn_frac: float = 0.0, allowed: tuple[str, ...] = ()
    ) -> float | str:
        """One metadata property, checked (a damaged or hand-edited file is refused at load, naming the property,
        not half-way through a run): latent_dim, zn_frac, nuisance_dims (default floor(dim * zn_frac)), or a
        property with `allowed` values (precision defaults to fp32)."""
        value = props.get(key, {"nuisance_dims": str(int(dim * zn_frac)), "precision": "fp32"}.get(key))
        wanted = {
            "latent_dim": ("a width from 1 to 65536", int, 1, 65536),
            "zn_frac": ("a share from 0 to 1", float, 0, 1),
            "nuisance_dims": (f"a count from 0 to latent_dim ({dim})", int, 0, dim),
        }
        if allowed:
            if value not in allowed:
                raise self._bad_property(key, value, " or ".join(allowed))
            return value
        what, kind, low, high = wanted[key]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise self._bad_property(key, value, what) from None
        if not low <= number <= high:  # NaN fails this too
            raise self._bad_property(key, value, what)
        return number

    def _bad_property(self, key: str, value: object, wanted: str) -> EncoderFileError:
        return EncoderFileError(
            f"{self.path}: metadata morphlake.{key} = {value!r} is not {wanted}",
            "re-export the encoder from its weights (morphlake export-onnx), or fix the property",
        )

    @property
    def concurrent(self) -> bool:
        """Whether batches may run side by side from several threads (IO binding on CUDA is single-threaded)."""
        return self.provider != CUDA

    def run(self, pixels: np.ndarray | ort.OrtValue) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [N,1,288,128] -> (z_mu, z_logvar) float32 [N, latent_dim]. `pixels` may already lie on the
        encoder's device (an OrtValue: --decode gpu's resized batch), where it is bound, never copied."""
        if self.provider != CUDA and not isinstance(pixels, ort.OrtValue):
            mu, logvar = self.session.run([MU_NAME, LOGVAR_NAME], {INPUT_NAME: pixels})
            return mu, logvar
        return self._run_bound(pixels)

    def _run_bound(self, pixels: np.ndarray | ort.OrtValue) -> tuple[np.ndarray, np.ndarray]:
        # IO binding: a host batch is copied into one device buffer reused from batch to batch; the outputs are
        # written into device buffers reused the same way, and read back once.
        with self._bound:
            return self._run_bound_locked(pixels)

    def _run_bound_locked(self, pixels: np.ndarray | ort.OrtValue) -> tuple[np.ndarray, np.ndarray]:
        device = "cuda" if self.provider == CUDA else "cpu"
        if isinstance(pixels, ort.OrtValue):
            value, shape = pixels, tuple(pixels.shape())
        else:
            shape = pixels.shape
            if self._input is None or tuple(self._input.shape()) != shape:
                self._input = ort.OrtValue.ortvalue_from_numpy(pixels, device, 0)
            else:
                self._input.update_inplace(pixels)
            value = self._input
        if self._binding is None:
            self._binding = self.session.io_binding()
        self._binding.bind_ortvalue_input(INPUT_NAME, value)
        if not self._outputs or tuple(self._outputs[MU_NAME].shape())[0] != shape[0]:
            dim = self.info.latent_dim
            self._outputs = {
                name: ort.OrtValue.ortvalue_from_shape_and_type([shape[0], dim], np.float32, device, 0)
                for name in (MU_NAME, LOGVAR_NAME)
            }
            for name, output in self._outputs.items():
                self._binding.bind_ortvalue_output(name, output)
        self.session.run_with_iobinding(self._binding)
        mu, logvar = self._outputs[MU_NAME].numpy(), self._outputs[LOGVAR_NAME].numpy()  # copied from a device
        if device == "cpu":  # numpy() of a host buffer may be a view of it, which the next batch overwrites
            mu, logvar = mu.copy(), logvar.copy()
        return mu, logvar
