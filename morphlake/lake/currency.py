"""Which embeddings are current: the one rule `embed` plans by, build06 counts by and `status` reports stale by."""

from __future__ import annotations

import pyarrow as pa

LEGACY, ONNX = "legacy_csv", "onnx"
KEYS = ("snip_id", "source", "model_sha256", "image_fingerprint", "embed_options")
# An ONNX embedding whose image changed since it was made (its fingerprint is not the ledger's): the part of the
# rule that does not depend on the encoder, as SQL over embeddings `e` and the snip ledger `s` (report.health).
IMAGE_CHANGED_SQL = (
    "e.image_fingerprint is not null and s.fingerprint is not null and e.image_fingerprint <> s.fingerprint"
)


def current_snips(
    embeddings: pa.Table, fingerprints: dict[str, str | None], *, sha256: str | None, options: str | None
) -> set[str]:
    """Snips whose embedding needs no new run: legacy-store rows always (ingest keeps them; morphlake cannot make
    them again); ONNX rows made by the encoder file `sha256` with the same embed options (None: legacy-faithful)
    from the image the ledger has now (`fingerprints`: snip -> ledger fingerprint). `embeddings` holds KEYS (a
    missing column counts as null: partitions written before embed_options lack it)."""
    rows = embeddings.num_rows

    def column(key: str) -> list:
        return embeddings[key].to_pylist() if key in embeddings.column_names else [None] * rows

    return {
        snip
        for snip, source, sha, image, opts in zip(*map(column, KEYS))
        if source == LEGACY
        or (
            source == ONNX
            and sha is not None
            and sha == sha256
            and (opts or "") == (options or "")
            and image is not None
            and image == fingerprints.get(snip)
        )
    }
