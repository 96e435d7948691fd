"""Named input errors and the skipped-item records a partial run lists (both shared with morphlake.embed)."""

from __future__ import annotations

from morphlake.common.errors import HintedError
from morphlake.common.skipped import Skipped


class InputError(HintedError):
    """An input that cannot be used; the message names the item and says how to fix it."""


__all__ = ["InputError", "Skipped"]
