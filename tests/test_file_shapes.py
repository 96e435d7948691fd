"""Unit tests of the one-shape rule: when a lake table's files may be read without union_by_name."""

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from morphlake.common.file_shapes import one_shape
from morphlake.common.sqltext import glob_literal

BASE = pa.table(
    {
        "snip_id": pa.array(["a", "b"]),
        "z_mu_00": pa.array([0.5, 1.5], pa.float32()),
        "z_mu": pa.array([[0.5], [1.5]], pa.list_(pa.float32())),
    }
)


def shapes_agree(tmp_path, second: pa.Table | None, *, polars_copy: bool = False) -> bool:
    """Whether BASE and `second` (or BASE's Polars copy), as two partitions' files, have one shape."""
    folder = tmp_path / "br[1] it's"  # globbed literally
    for exp in ("e1", "e2"):
        (folder / exp).mkdir(parents=True)
    pq.write_table(BASE, folder / "e1" / "part-00000.parquet")
    if polars_copy:
        copy = pl.read_parquet(folder / "e1" / "part-00000.parquet", glob=False)
        copy.write_parquet(folder / "e2" / "part-00000.parquet")
    else:
        pq.write_table(second, folder / "e2" / "part-00000.parquet")
    with duckdb.connect() as con:
        return one_shape(con, glob_literal(folder, "*/*.parquet"))


def test_files_written_alike_or_rewritten_by_polars_have_one_shape(tmp_path):
    assert shapes_agree(tmp_path, BASE.slice(1))
    assert shapes_agree(tmp_path / "polars", None, polars_copy=True)  # other root name and nullability
    # DuckDB matches columns by name across files, so another order is the same shape
    assert shapes_agree(tmp_path / "order", BASE.select(["z_mu", "snip_id", "z_mu_00"]))


def test_a_file_that_cannot_be_read_is_not_one_shape(tmp_path):
    """A truncated file: the by-name read, and dbt's compile of the same query fails naming it."""
    (tmp_path / "e1").mkdir()
    pq.write_table(BASE, tmp_path / "e1" / "part-00000.parquet")
    (tmp_path / "e2").mkdir()
    (tmp_path / "e2" / "part-00000.parquet").write_bytes(b"PAR1 not a footer")
    with duckdb.connect() as con:
        assert not one_shape(con, glob_literal(tmp_path, "*/*.parquet"))
        assert con.execute("select 1").fetchall() == [(1,)]  # the connection is still usable


@pytest.mark.parametrize(
    "second",
    [
        BASE.append_column("yolk_um", pa.array([1.0, 2.0])),
        BASE.drop_columns(["z_mu_00"]),
        BASE.set_column(1, "z_mu_00", pa.array([0.5, 1.5], pa.float64())),
        BASE.select(["z_mu_00", "snip_id", "z_mu"]).rename_columns(["z_mu_01", "snip_id", "z_mu"]),
    ],
    ids=["column added", "column missing", "type changed", "column renamed"],
)
def test_files_of_other_columns_or_types_have_two_shapes(tmp_path, second):
    assert not shapes_agree(tmp_path, second)
