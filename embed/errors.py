"""Named errors of the encoder and the embedding runner; messages say how to fix the problem."""

from __future__ import annotations


class EmbedError(Exception):
    """The encoder or its inputs cannot be used."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


class EncoderFileError(EmbedError):
    """An ONNX file that is not a usable morphlake encoder."""


class DeviceUnavailable(EmbedError):
    """A GPU was asked for and cannot be used."""
