"""snip_id grammar, stem normalisation and safe path segments for experiment and model names."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import TYPE_CHECKING

from morphlake.ingest.errors import InputError

if TYPE_CHECKING:  # Polars loads with the readers that use it, not with these rules (every command imports them)
    import polars as pl

SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
SAFE_SEGMENT_HELP = "ASCII letters, digits, '_', '-' and '.', starting with a letter or digit, no '..'"

# <experiment>_<well>_e<nn>_t<tttt>; the well is a plate coordinate such as C12.
SNIP_ID = re.compile(r"^(?P<embryo_id>(?P<experiment>.+)_(?P<well>[A-Za-z]\d{2})_e\d+)_t(?P<time>\d{4})$")
_FRAME_SUFFIX = re.compile(r"_s(\d{4})$")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def is_safe_segment(value: str) -> bool:
    """True when value can be used as one path segment / Hive partition value."""
    return bool(SAFE_SEGMENT.match(value)) and ".." not in value


def check_segment(kind: str, value: object) -> str:
    """Return value if it is a safe path segment, else raise InputError naming it."""
    text = "" if value is None else str(value)
    if not is_safe_segment(text):
        raise InputError(
            f"{kind} {text!r} cannot be used as a lake partition name",
            f"rename it using only {SAFE_SEGMENT_HELP}",
        )
    return text


def normalise_stem(name: str) -> str:
    """File name or stem -> snip_id: drop folders and image extension, `_s0023` -> `_t0023`."""
    stem = PurePath(name).name
    lower = stem.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return _FRAME_SUFFIX.sub(r"_t\1", stem)


def normalise_stem_expr(column: str) -> pl.Expr:
    """normalise_stem for ids in a table column (no folders to drop there), as a Polars expression."""
    import polars as pl

    return pl.col(column).str.replace(r"(?i)\.(jpe?g|png)$", "").str.replace(r"_s(\d{4})$", "_t$1").alias(column)


def parse_snip_id(snip_id: str) -> dict[str, str] | None:
    """Split a snip_id into experiment, well, embryo_id and time index; None if it does not parse."""
    match = SNIP_ID.match(snip_id)
    return match.groupdict() if match else None
