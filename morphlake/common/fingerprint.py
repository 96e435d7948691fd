"""The image fingerprint: blake2b-128 of a file's bytes, as hex.

The ledger fingerprints files at ingest, the embed reader the bytes it decoded; embeddings record the
reader's, and joins compare the two, so both come from here.
"""

from __future__ import annotations

import hashlib
from os import PathLike

DIGEST_SIZE = 16  # bytes: blake2b-128
CHUNK = 1 << 20


def fingerprint_bytes(data: bytes) -> str:
    """The fingerprint of bytes already read (what fingerprint_file gives for a file holding them)."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    digest.update(data)
    return digest.hexdigest()


def fingerprint_file(path: str | PathLike) -> str:
    """The fingerprint of a file's bytes, read in chunks (the file is not held in memory)."""
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["fingerprint_bytes", "fingerprint_file", "DIGEST_SIZE"]
