"""Unit tests of the df03 export model's helpers (dbt_project/models/marts/df03_export.py)."""

import importlib.util
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SPEC = importlib.util.spec_from_file_location(
    "df03_export", Path(__file__).resolve().parents[1] / "dbt_project" / "models" / "marts" / "df03_export.py"
)
export = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(export)


def test_experiments_are_grouped_into_bounded_runs_in_order():
    counts = [("a", 60), ("b", 50), ("c", 200), ("d", 10), ("e", 90)]
    assert export.export_groups(counts, max_rows=100) == [["a"], ["b"], ["c"], ["d", "e"]]
    assert export.export_groups([], max_rows=100) == []
    assert sum(export.export_groups(counts, max_rows=10**9), []) == ["a", "b", "c", "d", "e"]


def test_a_partition_written_as_several_files_becomes_one(tmp_path):
    folder = tmp_path / "experiment_date=x"
    folder.mkdir()
    pq.write_table(pa.table({"snip_id": ["s1", "s2"], "z": [1.0, 2.0]}), folder / "data_0.parquet")
    pq.write_table(pa.table({"snip_id": ["s3"], "z": [3.0]}), folder / "data_1.parquet")
    target = tmp_path / "out.parquet"
    export.one_file(str(folder), str(target))
    assert pq.read_table(target).to_pydict() == {"snip_id": ["s1", "s2", "s3"], "z": [1.0, 2.0, 3.0]}
