"""Lake paths inside DuckDB SQL: string literals with their quotes doubled, and glob characters taken literally."""

from __future__ import annotations

from pathlib import PurePath

# DuckDB expands *, ? and [...] in every path it reads (a list's items too); a character class of one character
# matches it literally: "br[1]" -> "br[[]1]", "a*b" -> "a[*]b". "[" first: the other replacements add brackets.
_GLOB_ESCAPES = (("[", "[[]"), ("*", "[*]"), ("?", "[?]"))


def literal(text: object) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + str(text).replace("'", "''") + "'"


def glob_escape(path: str | PurePath) -> str:
    """The path as a DuckDB glob that matches exactly it (a lake under `br[1]` or `it's *new*`)."""
    text = str(path)
    for char, escaped in _GLOB_ESCAPES:
        text = text.replace(char, escaped)
    return text


def path_glob(base: str | PurePath, pattern: str = "") -> str:
    """A DuckDB glob: `pattern` (e.g. "*/part-00000.parquet") under the folder `base`, taken literally."""
    return glob_escape(base) + (f"/{pattern}" if pattern else "")


def glob_literal(base: str | PurePath, pattern: str = "") -> str:
    """path_glob as a SQL string literal."""
    return literal(path_glob(base, pattern))


__all__ = ["literal", "glob_escape", "path_glob", "glob_literal"]
