"""The one rule of which embeddings are current (morphlake.lake.currency), as embed, build06 and status use it."""

import pyarrow as pa

from morphlake.lake.currency import current_snips

ROWS = {
    "snip_id": ["legacy", "same", "other_options", "other_model", "image_changed", "image_gone"],
    "source": ["legacy_csv", "onnx", "onnx", "onnx", "onnx", "onnx"],
    "model_sha256": [None, "a", "a", "b", "a", "a"],
    "image_fingerprint": [None, "f1", "f2", "f3", "old", "f5"],
    "embed_options": [None, None, "decode=gpu", None, None, None],
}
LEDGER = {"legacy": "x", "same": "f1", "other_options": "f2", "other_model": "f3", "image_changed": "new"}


def test_legacy_rows_and_onnx_rows_of_this_file_options_and_image_are_current():
    table = pa.table(ROWS)
    assert current_snips(table, LEDGER, sha256="a", options=None) == {"legacy", "same"}
    assert current_snips(table, LEDGER, sha256="a", options="decode=gpu") == {"legacy", "other_options"}
    assert current_snips(table, LEDGER, sha256=None, options=None) == {"legacy"}  # build06 without an encoder


def test_a_partition_from_before_embed_options_counts_as_legacy_faithful():
    table = pa.table({k: v for k, v in ROWS.items() if k != "embed_options"})
    assert current_snips(table, LEDGER, sha256="a", options=None) == {"legacy", "same", "other_options"}


def test_an_onnx_row_without_a_model_or_an_image_fingerprint_is_never_current():
    """Nulls never match: a build06 run without an encoder (sha256 None) or a ledger row without a fingerprint
    (build06 fingerprints only where ONNX rows exist) does not count such a row as current."""
    table = pa.table(
        {
            "snip_id": ["no_model", "no_image"],
            "source": ["onnx", "onnx"],
            "model_sha256": [None, "a"],
            "image_fingerprint": ["f", None],
            "embed_options": [None, None],
        }
    )
    assert current_snips(table, {"no_model": "f", "no_image": None}, sha256=None, options=None) == set()
    assert current_snips(table, {"no_model": "f", "no_image": None}, sha256="a", options=None) == set()
