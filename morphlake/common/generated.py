"""The banner of a file morphlake renders into the dbt project (one wording, one command to render it again) and the
Jinja comment it goes in."""

from __future__ import annotations

import textwrap

RENDER_COMMAND = "python -m morphlake.lake.dbt_files --write"


def banner(source: str) -> str:
    """What rendered a file and how to render it again."""
    return f"GENERATED from {source} by `{RENDER_COMMAND}`: do not edit by hand (CI checks it is current)."


def jinja_comment(text: str, *, width: int = 112) -> str:
    """`text` as a Jinja comment that leaves no whitespace behind, wrapped at `width`."""
    lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)
    return "{#- " + "\n    ".join(lines) + " -#}"


def jinja_string(text: str, *, indent: int) -> str:
    """A Jinja string expression of `text`, in quoted pieces of at most ~80 characters joined by `~`, a line each."""
    pieces = textwrap.wrap(text, 80, drop_whitespace=False, break_on_hyphens=False, break_long_words=False)
    assert "".join(pieces) == text
    quoted = ['"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"' for piece in pieces]
    return f"\n{' ' * indent}~ ".join(quoted)


__all__ = ["RENDER_COMMAND", "banner", "jinja_comment", "jinja_string"]
