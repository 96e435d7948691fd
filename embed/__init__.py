"""The legacy encoder as ONNX and the batched reader -> encoder runner (no lake writes).

The names below load their module on first use (PEP 562), so importing one light submodule (e.g. the errors)
does not import onnx and onnxruntime: every morphlake command imports this package, few need an encoder.
"""

from typing import TYPE_CHECKING

from morphlake.common.lazy import lazy_exports

if TYPE_CHECKING:  # the same names for the type checker, which cannot follow __getattr__
    from morphlake.embed.architecture import EncoderSpec as EncoderSpec
    from morphlake.embed.errors import DeviceUnavailable as DeviceUnavailable
    from morphlake.embed.errors import EmbedError as EmbedError
    from morphlake.embed.errors import EncoderFileError as EncoderFileError
    from morphlake.embed.model import Encoder as Encoder
    from morphlake.embed.model import EncoderInfo as EncoderInfo
    from morphlake.embed.reader import SnipRef as SnipRef
    from morphlake.embed.runner import EmbeddedBatch as EmbeddedBatch
    from morphlake.embed.runner import embed_snips as embed_snips

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
