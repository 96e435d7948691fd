"""Errors raised by the lake layer and pipeline; each message says how to fix the problem."""

from __future__ import annotations

from morphlake.ingest.errors import InputError


class MorphlakeError(InputError):
    """A run cannot go on; the message names the item and gives a hint."""

    skipped: list | None = None  # the items it is about, where it has them (the run record lists them)

    def __init__(self, message: str, hint: str = "", *, skipped: list | None = None):
        super().__init__(message, hint)
        if skipped is not None:
            self.skipped = skipped


class LakeLocked(MorphlakeError):
    """Another writer holds the lake lock."""


class PartialResult(MorphlakeError):
    """Items were skipped: a strict run fails with this, naming them."""

    def __init__(self, skipped: list, what: str):
        super().__init__(
            self.listing(skipped, what),
            "fix the items above, or pass --allow-partial to skip them "
            "(exit code 2, listed in runs/<run_id>.partial.json)",
            skipped=skipped,
        )

    @staticmethod
    def listing(skipped: list, what: str) -> str:
        """ "N <what> could not be used:" and the first ten items, one per line."""
        lines = [f"  - {s}" for s in skipped[:10]]
        more = f"\n  … and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        return f"{len(skipped)} {what} could not be used:\n" + "\n".join(lines) + more
