"""The legacy encoder as ONNX and the batched reader -> encoder runner (no lake writes).

The names below load their module on first use (PEP 562), so importing one light submodule (e.g. the errors)
does not import onnx and onnxruntime: every morphlake command imports this package, few need an encoder.
"""

from importlib import import_module

_EXPORTS = {
    "EncoderSpec": "architecture",
    "Encoder": "model",
    "EncoderInfo": "model",
    "SnipRef": "reader",
    "EmbeddedBatch": "runner",
    "embed_snips": "runner",
    "EmbedError": "errors",
    "EncoderFileError": "errors",
    "DeviceUnavailable": "errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
