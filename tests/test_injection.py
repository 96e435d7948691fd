"""No injection: names from files and flags reach paths only as checked segments and SQL only as literals."""

from pathlib import Path

import duckdb
import onnx
import pytest
from plain_dbt import plain_dbt

HOSTILE = ["../../outside", "a/b", "x' or '1'='1", "m=1", "..", "name; drop table df03"]


def files_outside(base: Path, before: set) -> set:
    return {p for p in base.rglob("*")} - before


@pytest.mark.parametrize("name", HOSTILE)
def test_model_name_in_onnx_metadata_cannot_escape_the_lake(name, cli, ingested, encoder_path, tmp_path):
    model = onnx.load(str(encoder_path))
    for prop in model.metadata_props:
        if prop.key == "morphlake.model_name":
            prop.value = name
    hostile = tmp_path / "hostile.onnx"
    onnx.save(model, str(hostile))
    before = set(tmp_path.rglob("*"))
    result = cli("embed", "--model", hostile, "--lake", ingested)
    assert result.exit_code == 1
    assert f"model name {name!r} cannot be used as a lake partition name" in result.stderr
    assert files_outside(tmp_path, before) <= {
        p for p in tmp_path.rglob("*") if ingested in p.parents and "runs" in p.parts
    }


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_name_flags_are_refused(name, cli, root, lake):
    for args in (
        ["ingest", "--root", root, "--lake", lake, "--model-name", name],
        ["build", "--lake", lake, "--model-name", name],
        ["build06", "--root", root, "--data-root", root, "--lake", lake, "--model-name", name, "--dry-run"],
    ):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "cannot be used as a lake partition name" in result.stderr
    assert not (lake / "embeddings").exists()


def test_hostile_train_name_is_refused(cli, root, lake):
    result = cli("build06", "--root", root, "--data-root", root, "--lake", lake, "--train-name", "../../x", "--dry-run")
    assert result.exit_code == 1 and "training set name '../../x'" in result.stderr


def test_dbt_vars_reach_sql_as_literals(cli, embedded_lake):
    """Plain dbt (no morphlake validation): a quote in model_name stays inside the string literal."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    vars_ = "{model_name: \"x' or '1'='1\", z_schema: flat}"
    out = plain_dbt(embedded_lake, "run", "--select", "int_df03", "df03", "--vars", vars_)
    assert out.returncode == 0, out.stdout[-2000:]
    with duckdb.connect(str(embedded_lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from df03").fetchall() == [(0,)]  # no row matches that name
        sql = con.execute("select sql from duckdb_views() where view_name = 'int_df03'").fetchall()[0][0]
    assert "'x'' or ''1''=''1'" in sql
