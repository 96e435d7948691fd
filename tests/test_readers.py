"""Every reader's ordinary pattern on every table of a built demo lake: the same rows, experiment_date a string."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import Cli

from morphlake import DEFAULT_MODEL_NAME

# table -> its folder in the lake, and the glob that reaches its partition files one level per partition key
TABLES = {
    "df02": ("raw/df02", "*/*.parquet"),
    "snips": ("raw/snips", "*/*.parquet"),
    "train": ("raw/train", "*/*.parquet"),
    "embeddings": ("embeddings", "*/*/*.parquet"),
    "df03 export": ("exports/df03", "*/*.parquet"),
}


@pytest.fixture(scope="module")
def built_lake(embedded_template, tmp_path_factory) -> Path:
    """The tiny demo lake, built: raw tables, embeddings and the df03 export."""
    lake = tmp_path_factory.mktemp("readers") / "lake"
    shutil.copytree(embedded_template, lake)
    result = Cli(lake)("build", "--lake", lake)
    assert result.exit_code == 0, result.output
    return lake


def rows_in_footers(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.rglob("*.parquet"))


def duckdb_read(pattern: str) -> tuple[int, str]:
    sql = f"select count(*), any_value(typeof(experiment_date)) from read_parquet('{pattern}', hive_partitioning=true)"
    return tuple(duckdb.connect().execute(sql).fetchone())


READERS = {
    "duckdb **/*.parquet": lambda folder, one_level: duckdb_read(f"{folder}/**/*.parquet"),
    "duckdb */*.parquet": lambda folder, one_level: duckdb_read(f"{folder}/{one_level}"),
    "polars folder": lambda folder, one_level: polars_read(pl.scan_parquet(folder, hive_partitioning=True)),
    "polars glob": lambda folder, one_level: polars_read(pl.scan_parquet(f"{folder}/**/*.parquet")),
    "pyarrow.dataset": lambda folder, one_level: arrow_read(ds.dataset(folder, partitioning="hive").to_table()),
}


def polars_read(scan: pl.LazyFrame) -> tuple[int, str]:
    frame = scan.select("experiment_date").collect()
    return frame.height, "VARCHAR" if frame.schema["experiment_date"] == pl.String else str(frame.schema)


def arrow_read(table: pa.Table) -> tuple[int, str]:
    kind = table.schema.field("experiment_date").type
    return table.num_rows, "VARCHAR" if kind == pa.string() else str(kind)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("table", TABLES)
def test_every_reader_reads_every_table(built_lake, table, reader):
    folder, one_level = TABLES[table]
    path = built_lake / folder
    expected = rows_in_footers(path.resolve())
    assert expected > 0
    assert READERS[reader](path, one_level) == (expected, "VARCHAR")


def test_the_export_holds_partitions_only(built_lake):
    """df03's schema file lives beside the export, in its build folder: inside it would trip DuckDB's `**` and
    Polars on the folder (no file name is skipped by both)."""
    export = (built_lake / "exports" / "df03").resolve()
    assert all(p.name.startswith("experiment_date=") and p.is_dir() for p in export.iterdir())
    assert (export.parent / "df03_schema.parquet").is_file()


def test_the_export_is_the_legacy_df03_shape_with_z_sigma_one_join_away(built_lake):
    """df02's columns, the provenance, z_mu (no z_sigma, as the legacy df03); each file sorted by snip_id and typed
    as its schema file; floats stored without a dictionary; the schema file says where z_sigma went."""
    export = (built_lake / "exports" / "df03").resolve()
    schema_file = pq.ParquetFile(export.parent / "df03_schema.parquet")
    meta = {k.decode(): v.decode() for k, v in schema_file.schema_arrow.metadata.items()}
    assert meta["model_name"] == DEFAULT_MODEL_NAME and "df03_z_sigma" in meta["z_sigma"]
    for path in export.glob("*/*.parquet"):
        part = pq.ParquetFile(path)
        assert part.schema_arrow.remove_metadata().equals(schema_file.schema_arrow.remove_metadata()), path
        names = part.schema_arrow.names
        assert not [n for n in names if n.startswith("z_sigma")] and [n for n in names if n.startswith("z_mu")]
        snips = part.read(columns=["snip_id"])["snip_id"].to_pylist()
        assert snips == sorted(snips)
        z = names.index(next(n for n in names if n.startswith("z_mu")))
        assert "RLE_DICTIONARY" not in part.metadata.row_group(0).column(z).encodings
        assert "RLE_DICTIONARY" in part.metadata.row_group(0).column(names.index("snip_id")).encodings
    con = duckdb.connect(str(built_lake / "warehouse.duckdb"), read_only=True)
    joined = con.execute(
        "select count(*) from df03 join df03_z_sigma using (snip_id, experiment_date, embedding_run_id)"
    )
    assert joined.fetchone()[0] == rows_in_footers(export)


def test_spark_reads_every_table(built_lake):
    """Spark's hive read, where pyspark (and Java) are installed."""
    pyspark = pytest.importorskip("pyspark.sql")
    spark = pyspark.SparkSession.builder.master("local[1]").appName("morphlake-readers").getOrCreate()
    try:
        for folder, _ in TABLES.values():
            path = built_lake / folder
            frame = spark.read.parquet(str(path))
            assert frame.count() == rows_in_footers(path.resolve())
            assert dict(frame.dtypes)["experiment_date"] == "string"
    finally:
        spark.stop()


def test_digit_only_experiment_names_need_a_string_hint(built_lake, tmp_path):
    """Readers infer `experiment_date=20240626` from the path as an integer when every partition they see has
    digits only; the lake README gives each reader's hint that keeps it a string (as the files hold it)."""
    only_digits = tmp_path / "embeddings"
    part = built_lake / "embeddings" / f"model_name={DEFAULT_MODEL_NAME}" / "experiment_date=20240626"
    shutil.copytree(part, only_digits / part.name)
    assert duckdb_read(f"{only_digits}/**/*.parquet") == (6, "BIGINT")  # what the hint is for
    hinted = duckdb.connect().execute(
        f"select count(*), any_value(typeof(experiment_date)) from read_parquet('{only_digits}/**/*.parquet', "
        "hive_partitioning=true, hive_types={'experiment_date': 'VARCHAR'})"
    )
    assert tuple(hinted.fetchone()) == (6, "VARCHAR")
    partitioning = ds.partitioning(pa.schema([("experiment_date", pa.string())]), flavor="hive")
    assert arrow_read(ds.dataset(only_digits, partitioning=partitioning).to_table()) == (6, "VARCHAR")
    assert polars_read(pl.scan_parquet(only_digits, hive_partitioning=True)) == (6, "VARCHAR")  # no hint needed
