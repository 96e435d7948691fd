"""Named input errors and the skipped-item records used by --allow-partial."""

from __future__ import annotations

from dataclasses import asdict, dataclass


class InputError(Exception):
    """An input that cannot be used; the message names the item and says how to fix it."""

    def __init__(self, message: str, hint: str = ""):
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


@dataclass(frozen=True)
class Skipped:
    """One item (row, file, snip) that a reader left out, and why."""

    table: str
    item: str
    where: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.table}: {self.item} ({self.where}): {self.reason}"
