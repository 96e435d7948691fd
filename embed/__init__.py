"""The legacy encoder as ONNX and the batched reader -> encoder runner (no lake writes)."""

from embed.architecture import EncoderSpec
from embed.errors import DeviceUnavailable, EmbedError, EncoderFileError
from embed.model import Encoder, EncoderInfo
from embed.reader import SnipRef
from embed.runner import EmbeddedBatch, embed_snips

__all__ = ["EncoderSpec", "Encoder", "EncoderInfo", "SnipRef", "EmbeddedBatch", "embed_snips",
           "EmbedError", "EncoderFileError", "DeviceUnavailable"]
