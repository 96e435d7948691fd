"""Named errors of the encoder and the embedding runner; messages say how to fix the problem."""

from __future__ import annotations

from morphlake.common.errors import HintedError


class EmbedError(HintedError):
    """The encoder or its inputs cannot be used."""


class EncoderFileError(EmbedError):
    """An ONNX file that is not a usable morphlake encoder."""


class DeviceUnavailable(EmbedError):
    """A GPU was asked for and cannot be used."""
