"""The lake's tables in one registry: each table's Arrow schema, partition keys, files and column docs.

The dbt project's typed macros (macros/schemas.sql), its sources file (models/staging/_lake__sources.yml) and df03's
contract and column docs (models/marts/df03.yml) are rendered from here by `python -m morphlake.lake.dbt_files`;
CI checks that the committed files are current. The types of df02 and the ledger stay with ingest, which writes
them (DF02_SCHEMA, LEDGER_SCHEMA); this registry describes every one of their columns and fails on import when
the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from morphlake.ingest.df02 import DF02_SCHEMA
from morphlake.ingest.ledger import LEDGER_SCHEMA
from morphlake.lake.embeddings_table import META_FIELDS
from morphlake.lake.layout import PARTITION_KEYS, table_files


@dataclass(frozen=True, kw_only=True)
class Column:
    """One column: its name, its Arrow type (None for a column described only, such as z_mu_00 of D), its doc."""

    name: str
    type: pa.DataType | None
    description: str


@dataclass(frozen=True, kw_only=True)
class LakeTable:
    """One table of the lake: its columns in order, whether files may hold more (df02 keeps every CSV column), its
    grain and doc; its files and partition keys come from the lake's layout."""

    name: str
    description: str
    columns: tuple[Column, ...]
    open: bool = False  # files may hold more columns than these (every column of the lab's CSV is kept)

    @property
    def schema(self) -> pa.Schema:
        """The typed columns (those described only, like z_mu_00 of D, are not in it)."""
        return pa.schema([(c.name, c.type) for c in self.columns if c.type is not None])

    @property
    def files(self) -> str:
        """Its Parquet files, a glob relative to the lake root."""
        return table_files(self.name)

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return PARTITION_KEYS[self.name]


def described(schema: pa.Schema, docs: dict[str, str]) -> tuple[Column, ...]:
    """The schema's columns with their docs; a column without one, or a doc without a column, is an error."""
    if list(docs) != schema.names:
        raise ValueError(f"the docs name {list(docs)}, the schema {schema.names}: describe each column once, in order")
    return tuple(Column(name=field.name, type=field.type, description=docs[field.name]) for field in schema)


DF02 = LakeTable(
    name="df02",
    description=(
        "Grain: one row per snip_id. The embryo metadata table (embryo_metadata_df02.csv) as `morphlake ingest` "
        "typed it, every column of the CSV kept, one partition per experiment."
    ),
    open=True,
    columns=described(
        DF02_SCHEMA,
        {
            "snip_id": "embryo_id + '_t' + 4-digit time index, e.g. 20250612_30hpf_ctrl_atf6_C12_e01_t0000.",
            "embryo_id": "The embryo (experiment_date, well and embryo number).",
            "experiment_date": "The experiment, a string (20240626 or 20250612_30hpf_ctrl_atf6); the partition key.",
            "well": "Plate well, e.g. C12.",
            "time_int": "Time index of the frame.",
            "Time Rel (s)": "Seconds since the first frame.",
            "predicted_stage_hpf": "Developmental stage predicted in hours post fertilisation.",
            "surface_area_um": "Embryo surface area in µm².",
            "short_pert_name": "The perturbation's short name.",
            "phenotype": "Scored phenotype.",
            "control_flag": "Whether the embryo is a control (bool; the CSV's 0/1 or strings read as bool).",
            "temperature": "Incubation temperature (°C).",
            "medium": "Medium the embryo was imaged in.",
            "use_embryo_flag": "Whether the row is usable for analysis (the coverage threshold counts these rows).",
        },
    ),
)

TRAIN = LakeTable(
    name="train",
    description=(
        "Grain: one row per (train_name, snip_id). Training metadata sets "
        "(training_data/<train_name>/embryo_metadata_df_train.csv), every column kept."
    ),
    open=True,
    columns=(
        Column(name="snip_id", type=pa.string(), description="The snip, as in df02."),
        Column(
            name="train_name", type=pa.string(), description="The training set (its folder name); the partition key."
        ),
    ),
)

SNIPS = LakeTable(
    name="snips",
    description=(
        "Grain: one row per snip image file of a df02 snip. The ledger `morphlake ingest` reads from image headers; "
        "embed decides from it what to embed (never a snip whose image_status says it is gone)."
    ),
    columns=described(
        LEDGER_SCHEMA,
        {
            "snip_id": "The file's stem, normalised (extension dropped, an _s0023 frame suffix read as _t0023).",
            "experiment_date": "The experiment folder the file is in; the partition key.",
            "path": "Absolute path of the image file.",
            "format": "Image format (JPEG, PNG).",
            "width": "Width in pixels.",
            "height": "Height in pixels.",
            "mode": "Pillow colour mode of the file (L, RGB, …); embed converts to L as the legacy code did.",
            "file_size": "Bytes on disk.",
            "mtime_ns": "Modification time (ns) when ingested.",
            "fingerprint": "Content fingerprint; an embedding whose image_fingerprint differs is stale.",
            "image_status": (
                "null when the file was there and readable at the last ingest; missing (the file is gone) or "
                "unreadable (skipped by an --allow-partial ingest) for a snip the ledger had before, whose row is "
                "kept. Partitions written before this column existed read it as null."
            ),
        },
    ),
)

EMBEDDINGS = LakeTable(
    name="embeddings",
    description=(
        "Grain: one row per (model_name, snip_id). Embeddings of every model: rows read from the legacy latent "
        "store and rows `morphlake embed` made with the ONNX encoder; partitioned by model_name, experiment_date."
    ),
    columns=described(
        pa.schema(META_FIELDS),
        {
            "snip_id": "The snip, as in df02.",
            "experiment_date": "The experiment; a partition key.",
            "model_name": "The model (its folder under models/legacy/); a partition key.",
            "source": "onnx (morphlake embed) or legacy_csv (the legacy latent store).",
            "encoder_weights": "trained, or demo (seeded random weights of `morphlake demo`); null for store rows.",
            "model_sha256": "sha256 of the encoder file the row came from; null for store rows.",
            "image_fingerprint": "Fingerprint of the image the row was embedded from (null for store rows).",
            "embed_options": "Null when legacy-faithful fp32; else e.g. decode=reduced,precision=int8.",
            "z_naming": "The legacy store's column naming (flat or bio_nuisance), stored flat whatever it was; "
            "null for onnx rows.",
            "run_id": "The morphlake run that wrote the row.",
        },
    )
    + (
        Column(name="z_mu_00", type=None, description="First of D float32 mean columns z_mu_00 … z_mu_{D-1}."),
        Column(
            name="z_sigma_00",
            type=None,
            description="First of D float32 log-variance columns z_sigma_00 … z_sigma_{D-1} (the legacy name).",
        ),
    ),
)

LAKE_TABLES = (DF02, TRAIN, SNIPS, EMBEDDINGS)

# df03's columns after df02's: the embedding's provenance, as int_df03 selects them from the embeddings table.
DF03_PROVENANCE = (
    Column(name="model_name", type=pa.string(), description="The model of the embedding (var model_name)."),
    Column(name="embedding_source", type=pa.string(), description="onnx (morphlake embed) or legacy_csv (the store)."),
    Column(name="encoder_weights", type=pa.string(), description="trained or demo (onnx rows); null for store rows."),
    Column(name="model_sha256", type=pa.string(), description="sha256 of the encoder file; null for store rows."),
    Column(
        name="image_fingerprint",
        type=pa.string(),
        description="Fingerprint of the image the embedding was made from (null for store rows).",
    ),
    Column(
        name="embed_options",
        type=pa.string(),
        description="Null when legacy-faithful fp32; else e.g. decode=reduced,precision=int8.",
    ),
    Column(name="embedding_run_id", type=pa.string(), description="The morphlake run that wrote the embedding."),
)
DF03_Z = (
    Column(
        name="z_mu_00",
        type=None,
        description="First of D float32 mean columns, named by var z_schema: flat z_mu_00 … z_mu_{D-1}, or "
        "bio_nuisance z_mu_n_00 … (the first zn_frac of D) then z_mu_b_NN.",
    ),
    Column(
        name="z_mu",
        type=None,
        description="The same means as one FLOAT[D] vector, for vector SQL (array_cosine_similarity); in the "
        "warehouse's df03 view only, not in the Parquet export.",
    ),
)


__all__ = [
    "Column",
    "LakeTable",
    "described",
    "DF02",
    "TRAIN",
    "SNIPS",
    "EMBEDDINGS",
    "LAKE_TABLES",
    "DF03_PROVENANCE",
    "DF03_Z",
]
