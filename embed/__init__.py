"""The legacy encoder as ONNX and the batched reader -> encoder runner (no lake writes)."""

from morphlake.embed.architecture import EncoderSpec
from morphlake.embed.errors import DeviceUnavailable, EmbedError, EncoderFileError
from morphlake.embed.model import Encoder, EncoderInfo
from morphlake.embed.reader import SnipRef
from morphlake.embed.runner import EmbeddedBatch, embed_snips

__all__ = [
    "EncoderSpec",
    "Encoder",
    "EncoderInfo",
    "SnipRef",
    "EmbeddedBatch",
    "embed_snips",
    "EmbedError",
    "EncoderFileError",
    "DeviceUnavailable",
]
