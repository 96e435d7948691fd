"""The record of one item a reader left out, and why (what a partial run lists)."""

from __future__ import annotations

from dataclasses import KW_ONLY, asdict, dataclass


@dataclass(frozen=True)
class Skipped:
    """One item (row, file, snip) that a reader left out, and why."""

    table: str
    item: str
    where: str
    _: KW_ONLY
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.table}: {self.item} ({self.where}): {self.reason}"


def some(names: list[str], shown: int = 5) -> str:
    """The first few names, comma-separated, with `…` when there are more (for messages naming items)."""
    return ", ".join(map(str, names[:shown])) + (" …" if len(names) > shown else "")
