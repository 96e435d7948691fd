"""Errors raised by the lake layer and pipeline; each message says how to fix the problem."""

from __future__ import annotations

from morphlake.ingest.errors import InputError


class MorphlakeError(InputError):
    """A run cannot go on; the message names the item and gives a hint."""

    skipped: list | None = None  # the items it is about, where it has them (the run record lists them)


class LakeLocked(MorphlakeError):
    """Another writer holds the lake lock."""


class PartialResult(MorphlakeError):
    """Items were skipped: a strict run fails with this, naming them."""

    def __init__(self, skipped: list, what: str):
        self.skipped = skipped
        lines = [f"  - {s}" for s in skipped[:10]]
        more = f"\n  … and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        super().__init__(
            f"{len(skipped)} {what} could not be used:\n" + "\n".join(lines) + more,
            "fix the items above, or pass --allow-partial to skip them "
            "(exit code 2, listed in runs/<run_id>.partial.json)",
        )
