"""Durable renames: fsync a finished temporary, rename it into place, fsync the folder (lake.files and the
libraries' own writers, which may not import the lake, both end a write with it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to the disk."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(tmp: Path, path: Path) -> None:
    """`tmp`, finished, becomes `path` (replacing it) and stays so through a crash or power loss."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


__all__ = ["fsync_file", "fsync_dir", "replace_durably"]
