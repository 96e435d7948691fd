"""Small JPEG thumbnails of snips (from the paths the ledger holds) as data URIs, for the report's map."""

from __future__ import annotations

import base64
import io

from PIL import Image, UnidentifiedImageError

SIZE = (64, 144)  # width, height: a quarter of the 256x576 snips
QUALITY = 70


def thumbnail(path: str) -> str | None:
    """data:image/jpeg;base64,… of the snip at `path`; None when it cannot be read (not mounted, moved, bad)."""
    try:
        with Image.open(path) as image:
            image.draft("L", SIZE)  # JPEG: decode at a reduced scale straight away
            small = image.convert("L")
            small.thumbnail(SIZE)
            out = io.BytesIO()
            small.save(out, format="JPEG", quality=QUALITY)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def thumbnails(ids: list[str], paths: list[str | None], limit: int) -> tuple[dict[str, str], int]:
    """({snip_id: data URI} for up to `limit` of the snips, in order; how many of those tried could not be read)."""
    found: dict[str, str]
    found, missing = {}, 0
    for snip, path in zip(ids, paths):
        if len(found) >= limit:
            break
        uri = thumbnail(path) if path else None
        if uri is None:
            missing += 1
            if missing >= limit:  # images not mounted here: stop trying
                break
            continue
        found[snip] = uri
    return found, missing
