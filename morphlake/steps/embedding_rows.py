"""New rows of the embeddings table: snip rows and their provenance, in the lake's schema (ingest's and embed's)."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import pyarrow as pa

from morphlake.lake.arrays import string_array
from morphlake.lake.embeddings_table import conform


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a batch of new embedding rows came from (the same for every row)."""

    model_name: str
    source: str  # onnx | legacy_csv
    run_id: str
    encoder_weights: str | None = None  # onnx rows
    model_sha256: str | None = None  # onnx rows
    embed_options: str | None = None  # onnx rows; null: legacy-faithful


def embedding_rows(table: pa.Table, provenance: Provenance, *, dim: int) -> pa.Table:
    """`table`'s rows (snip_id, experiment_date, image_fingerprint, z columns …) with their provenance, conformed."""
    names = [f.name for f in fields(provenance)]
    constants = [string_array([value] * table.num_rows) for value in astuple(provenance)]
    return conform(pa.Table.from_arrays([*table.columns, *constants], names=[*table.column_names, *names]), dim)
