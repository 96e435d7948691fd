"""The legacy encoder as ONNX and the batched reader -> encoder runner (no lake writes).

The names below load their module on first use (PEP 562), so importing one light submodule (e.g. the errors)
does not import onnx and onnxruntime: every morphlake command imports this package, few need an encoder.
"""

from morphlake.common.lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, _EXPORTS)
