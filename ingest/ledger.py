"""The snip-image ledger: one row per image file, read from headers only (no full decode)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from morphlake.common.fingerprint import fingerprint_file
from morphlake.common.skipped import some
from morphlake.ingest.errors import InputError, Skipped
from morphlake.ingest.naming import IMAGE_EXTENSIONS, normalise_stem, parse_snip_id
from morphlake.ingest.paths import SNIP_SUBDIR, snip_dir

log = logging.getLogger("morphlake.ingest")
LEDGER_SCHEMA = pa.schema(
    [
        ("snip_id", pa.string()),
        ("experiment_date", pa.string()),
        ("path", pa.string()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("mode", pa.string()),
        ("file_size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("fingerprint", pa.string()),
        # null: the file was there and readable at the last ingest (partitions written before this column read
        # it as null too); "missing": the ledger had it and the file is gone; "unreadable": the ledger had it and
        # an --allow-partial ingest skipped the file (the row keeps what was known of the image before)
        ("image_status", pa.string()),
    ]
)
IMAGE_GONE = ("missing", "unreadable")  # image_status values (null: readable)


def list_snip_experiments(data_root: Path) -> list[str]:
    """Experiment folders present under <data_root>/training_data/bf_embryo_snips."""
    base = Path(data_root) / SNIP_SUBDIR
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


file_fingerprint = fingerprint_file  # content fingerprint of an image file (blake2b-128 of its bytes)


def _header(path: Path) -> tuple[str, int, int, str]:
    with Image.open(path) as image:  # lazy: reads the header, not the pixels
        return image.format or "", image.width, image.height, image.mode


def scan_snips(
    data_root: Path,
    experiment: str,
    known_snip_ids: set[str] | None = None,
    *,
    previous: dict[str, dict] | None = None,
    fingerprint: bool = True,
) -> tuple[pa.Table, list[Skipped]]:
    """Ledger rows for one experiment's snip folder, and the files left out (with reasons).

    known_snip_ids: when given, a file whose snip_id is not in it is left out (no df02 row), with a log line.
    previous: path -> earlier ledger row; unchanged files (same size and mtime) reuse its fingerprint.
    fingerprint: False leaves the fingerprints of files not in `previous` null (headers only, for counting).
    """
    folder = snip_dir(data_root, experiment)
    root = Path(data_root).resolve()
    if not folder.is_dir():
        raise InputError(
            f"no snip folder for experiment {experiment!r}: {folder}", "check the data root and the experiment name"
        )
    rows: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}  # snip_id -> the file name that gave its row
    orphans: list[str] = []
    for path in _image_files(folder):
        snip_id = normalise_stem(path.name)
        try:
            real = _real_file(path, root)
            if parse_snip_id(snip_id) is None:
                raise _LeftOut("file name is not <embryo_id>_t<NNNN> (e.g. 20240626_C12_e01_t0012.jpg)")
            if known_snip_ids is not None and snip_id not in known_snip_ids:
                orphans.append(path.name)  # df02 is the whole table: a row removed from it leaves its image behind
                continue
            if snip_id in seen:
                raise _LeftOut(f"is a second file for the same snip as {seen[snip_id]}; keep one of the two")
            stat, header = _checked_header(path, real)
        except _LeftOut as why:
            skipped.append(Skipped("snips", snip_id, str(path), reason=str(why)))
            continue
        seen[snip_id] = path.name
        prints = _fingerprint(real, stat, (previous or {}).get(str(path), {}), compute=fingerprint)
        rows.append(_row(snip_id, path, experiment=experiment, stat=stat, header=header, fingerprint=prints))
    rows += _carried(previous or {}, rows, skipped, known=known_snip_ids)
    if orphans:
        log.info(
            "%s: %d image file(s) match no df02 row and are left out of the ledger: %s",
            folder,
            len(orphans),
            some(orphans),
        )
    rows.sort(key=lambda r: r["snip_id"])
    return pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA), skipped


class _LeftOut(Exception):
    """A file of a snip folder that gets no ledger row, and why (the Skipped item's reason)."""


def _image_files(folder: Path) -> list[Path]:
    """The folder's files (and links) named as images, in name order."""
    return [
        path
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_EXTENSIONS and (path.is_file() or path.is_symlink())
    ]


def _real_file(path: Path, root: Path) -> Path:
    """The regular file a snip path names, links followed; it must lie inside the data root."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        raise _LeftOut("is a link that loops back on itself; replace it with the image file") from None
    if not real.is_relative_to(root):
        raise _LeftOut(f"is a link to {real}, outside the data root {root}; copy the file into the data root")
    if not real.is_file():
        raise _LeftOut("is a broken link or not a regular file")
    return real


def _checked_header(path: Path, real: Path) -> tuple[os.stat_result, tuple[str, int, int, str]]:
    """The file's stat and image header: not empty, readable, in the format its extension names."""
    stat = real.stat()
    if stat.st_size == 0:
        raise _LeftOut("is an empty file (0 bytes)")
    try:
        header = _header(real)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise _LeftOut(f"is not a readable image ({type(exc).__name__}: {exc})") from None
    fmt = header[0]
    if fmt != ("PNG" if path.suffix.lower() == ".png" else "JPEG"):
        raise _LeftOut(f"is a {fmt or 'unknown'} file named {path.suffix}; rename it to match its format")
    return stat, header


def _fingerprint(real: Path, stat: os.stat_result, old: dict, *, compute: bool) -> str | None:
    """The earlier row's fingerprint for an unchanged file (same size and mtime), else the file's if computing."""
    if old and old["file_size"] == stat.st_size and old["mtime_ns"] == stat.st_mtime_ns:
        return old["fingerprint"]
    return fingerprint_file(real) if compute else None


def _row(
    snip_id: str,
    path: Path,
    *,
    experiment: str,
    stat: os.stat_result,
    header: tuple[str, int, int, str],
    fingerprint: str | None,
) -> dict[str, Any]:
    """A readable image's ledger row."""
    fmt, width, height, mode = header
    return {
        "snip_id": snip_id,
        "experiment_date": experiment,
        "path": str(path),
        "format": fmt,
        "width": width,
        "height": height,
        "mode": mode,
        "file_size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "fingerprint": fingerprint,
    }


def _carried(
    previous: dict[str, dict], rows: list[dict], skipped: list[Skipped], *, known: set[str] | None
) -> list[dict]:
    """The earlier ledger's rows of snips whose file is now gone or unreadable (df02 still listing them), kept and
    marked: their embeddings stay in the lake, and the ledger must keep saying which image they came from."""
    found = {row["snip_id"] for row in rows}
    unreadable = {item.item for item in skipped}
    kept = []
    for old in previous.values():
        snip_id = old["snip_id"]
        if snip_id in found or (known is not None and snip_id not in known):
            continue
        kept.append({**old, "image_status": "unreadable" if snip_id in unreadable else "missing"})
        found.add(snip_id)
    return kept


__all__ = [
    "IMAGE_GONE",
    "scan_snips",
    "snip_dir",
    "list_snip_experiments",
    "file_fingerprint",
    "LEDGER_SCHEMA",
]
