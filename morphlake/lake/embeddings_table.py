"""The embeddings table's schema and the merge of new rows into an existing partition."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from morphlake.common import latent_width
from morphlake.common.sqltext import glob_literal
from morphlake.common.zcolumns import flat_z_mu, z_columns
from morphlake.errors import MorphlakeError
from morphlake.lake.layout import Lake, read_part

# The columns before the z columns, as embed and ingest write them; described in the registry
# (morphlake.lake.schemas.EMBEDDINGS), which renders them for the dbt project (embedding_meta_columns()).
META_FIELDS = [
    ("snip_id", pa.string()),
    ("experiment_date", pa.string()),
    ("model_name", pa.string()),
    ("source", pa.string()),  # onnx | legacy_csv
    ("encoder_weights", pa.string()),  # trained | demo (onnx rows); null for legacy_csv rows
    ("model_sha256", pa.string()),  # sha256 of the ONNX file; null for legacy_csv rows
    ("image_fingerprint", pa.string()),  # ledger fingerprint of the image that was embedded
    ("embed_options", pa.string()),  # e.g. "decode=reduced,precision=int8"; null: legacy-faithful fp32
    ("z_naming", pa.string()),  # flat | bio_nuisance: the legacy store's naming; null for onnx rows
    ("run_id", pa.string()),
]


def embeddings_schema(dim: int) -> pa.Schema:
    return pa.schema(META_FIELDS + [(name, pa.float32()) for name in z_columns(dim)])


def conform(table: pa.Table, dim: int) -> pa.Table:
    """Add missing metadata columns as nulls and order/cast columns to the lake schema."""
    schema = embeddings_schema(dim)
    index = {name: i for i, name in enumerate(table.column_names)}  # once: column_names is rebuilt on each access
    columns = [
        table.column(index[f.name]).cast(f.type) if f.name in index else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def read_partition(lake: Lake, model_name: str, experiment: str) -> pa.Table | None:
    path = lake.partition_file("embeddings", model_name=model_name, experiment_date=experiment)
    return read_part(path) if path.is_file() else None


def partition_dim(table: pa.Table) -> int:
    return len(flat_z_mu(table.column_names))


def model_latent_dim(lake: Lake, model_name: str) -> int | None:
    """The width D of a model's embeddings (z_mu_NN columns in its files' Parquet schemas); None when the model has
    none yet. Files of one model that disagree are an error naming both: the rule dbt's lake_latent_dim() runs
    too (morphlake.common.latent_width)."""
    folder = lake.partition_dir("embeddings", model_name=model_name)
    if not any(folder.glob(latent_width.FILES)):
        return None
    import duckdb

    try:
        with duckdb.connect() as con:
            rows = con.execute(latent_width.widths_sql(glob_literal(folder, latent_width.FILES))).fetchall()
    except duckdb.Error as error:
        raise MorphlakeError(
            f"cannot read the Parquet schemas of model {model_name}'s embeddings in {folder}: "
            f"{str(error).splitlines()[0]}",
            "remove the files there that morphlake did not write (e.g. a Mac's ._part-00000.parquet), or re-run "
            "`morphlake ingest` / `morphlake embed` to write the partitions again",
        ) from None
    if len(rows) > 1:
        raise MorphlakeError(
            latent_width.mixed_widths(model_name, rows, folder=lake.relative(folder)), latent_width.HINT
        )
    return int(rows[0][0])


def merge(existing: pa.Table | None, new: pa.Table, replaces: pa.Array | list, *, where: str) -> pa.Table:
    """existing minus rows whose snip_id is in `replaces`, plus `new`; sorted by snip_id."""
    dim = partition_dim(new)
    if existing is None or existing.num_rows == 0:
        merged = new
    else:
        if partition_dim(existing) != dim:
            raise MorphlakeError(
                f"{where} holds {partition_dim(existing)}-dim embeddings, the new rows have {dim}",
                "use a different --model-name for a model with another latent size",
            )
        ids = replaces.combine_chunks() if isinstance(replaces, pa.ChunkedArray) else pa.array(replaces)
        keep = pc.invert(pc.is_in(existing["snip_id"], value_set=ids.cast(pa.string())))
        merged = pa.concat_tables([conform(existing.filter(keep), dim), conform(new, dim)])
    return merged.sort_by("snip_id")
