"""Functional tests of build snapshots: the warehouse and the df03 export published as a pair, and incremental
builds that redo only what changed (real CLI, real dbt, a tiny lake in tmp_path)."""

import json
import os
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from morphlake import DEFAULT_MODEL_NAME

EMBED_DIR = f"embeddings/model_name={DEFAULT_MODEL_NAME}"
CHANGED, OTHER = "20240626", "20250305_24hpf_lmx1b"


def last_build(lake: Path) -> dict:
    return json.loads(max((lake / "runs").glob("*-build-*.json")).read_text())


def current(lake: Path) -> Path:
    return lake / "builds" / os.readlink(lake / "builds" / "current")


def df03(lake: Path) -> list[tuple]:
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select snip_id, z_mu from df03 order by snip_id").fetchall()


def partition(build: Path, exp: str) -> Path:
    return build / "df03" / f"experiment_date={exp}" / "part-00000.parquet"


def test_a_build_with_no_change_writes_nothing(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    assert last_build(embedded_lake)["build"]["mode"] == "full"
    before = {p: p.stat().st_mtime_ns for p in (embedded_lake / "builds").rglob("*")}
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 0, result.output
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "unchanged" and record["build"]["rebuilt"] == {}
    assert "dbt_build" not in record["timings_s"]  # dbt was not started
    assert {p: p.stat().st_mtime_ns for p in (embedded_lake / "builds").rglob("*")} == before


def test_a_changed_experiment_is_the_only_partition_rewritten(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    first, rows = current(embedded_lake), df03(embedded_lake)
    part = embedded_lake / EMBED_DIR / f"experiment_date={CHANGED}" / "part-00000.parquet"
    frame = pl.read_parquet(part, hive_partitioning=False)
    frame.with_columns(pl.col("z_mu_00") + 1.0).write_parquet(part)  # re-embedded, say

    assert cli("build", "--lake", embedded_lake).exit_code == 0
    record, second = last_build(embedded_lake), current(embedded_lake)
    assert record["build"]["mode"] == "incremental"
    assert record["build"]["rebuilt"] == {CHANGED: "embeddings changed"}
    assert record["build"]["tested"] == [CHANGED]
    assert "dbt_build" not in record["timings_s"] and record["dbt"]["counts"] == {"pass": 25}
    # the unchanged partitions are the previous build's files (hard links), the changed one is new
    assert partition(second, OTHER).stat().st_ino == partition(first, OTHER).stat().st_ino
    assert partition(second, CHANGED).stat().st_ino != partition(first, CHANGED).stat().st_ino
    new_rows = df03(embedded_lake)
    changed = {snip for snip, _ in rows if snip.startswith(CHANGED)}
    for (snip, old), (_, new) in zip(rows, new_rows):
        assert np.allclose(np.array(new) - np.array(old), [1.0] + [0.0] * 99 if snip in changed else 0.0)
    # the warehouse and the export are this build's pair
    exported = pl.read_parquet(embedded_lake / "exports" / "df03" / "*" / "*.parquet").sort("snip_id")
    assert exported["z_mu_n_00"].to_list() == [v[0] for _, v in new_rows]
    # and the build before it is kept for readers that still have it open
    assert sorted(p.name for p in (embedded_lake / "builds").iterdir()) == sorted(["current", first.name, second.name])


def test_a_removed_experiment_leaves_the_export(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    shutil.rmtree(embedded_lake / "raw" / "df02" / f"experiment_date={CHANGED}")
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "incremental" and record["build"]["removed"] == [CHANGED]
    assert not partition(current(embedded_lake), CHANGED).parent.exists()
    assert all(not snip.startswith(CHANGED) for snip, _ in df03(embedded_lake))


def coverage_rows(lake: Path) -> list[tuple]:
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select * from df03_coverage").fetchall()


def test_df03_coverage_is_counted_again_only_where_the_build_rewrites(cli, embedded_lake):
    """An incremental build re-counts df03_coverage for the experiments it rewrites, keeps the others' rows and drops
    a removed one's: the table it leaves is the one a full build makes, row for row and in order."""
    warn = ("--coverage-severity", "warn")  # two snips lose their embedding: the coverage test only warns
    assert cli("build", "--lake", embedded_lake, *warn).exit_code == 0
    tables = json.loads((current(embedded_lake) / "build.json").read_text())["compiled"]["tables"]
    assert [(t["name"], t["per_experiment"]) for t in tables] == [("df03_coverage", True)]  # its yml's meta
    part = embedded_lake / EMBED_DIR / f"experiment_date={CHANGED}" / "part-00000.parquet"
    pl.read_parquet(part, hive_partitioning=False).slice(2).write_parquet(part)  # two snips lose their embedding
    shutil.rmtree(embedded_lake / "raw" / "df02" / f"experiment_date={OTHER}")
    result = cli("build", "--lake", embedded_lake, *warn)
    assert result.exit_code == 0, result.output
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "incremental" and record["build"]["removed"] == [OTHER]
    assert record["build"]["rebuilt"] == {CHANGED: "embeddings changed"}
    incremental = coverage_rows(embedded_lake)
    assert OTHER not in [row[0] for row in incremental]
    assert [row[3] for row in incremental if row[0] == CHANGED] == [4]  # df03_rows: 6 snips, 2 without embedding
    assert cli("build", "--lake", embedded_lake, "--full", *warn).exit_code == 0
    assert coverage_rows(embedded_lake) == incremental


def test_an_incremental_build_loads_no_table_library_it_does_not_use(cli, embedded_lake):
    """Its time is mostly fixed costs at any size: pandas (which pyarrow's Schema.empty_table imports), Polars and
    Pillow (which the data root's paths once pulled in through the readers) cost ~0.4 s of a ~2.4 s build."""
    import subprocess
    import sys

    assert cli("build", "--lake", embedded_lake).exit_code == 0
    part = embedded_lake / "raw" / "df02" / f"experiment_date={CHANGED}" / "part-00000.parquet"
    os.utime(part)
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in ('pandas', 'polars', 'PIL') if m in sys.modules)))\n"
        f"sys.argv = ['morphlake', '-q', 'build', '--lake', {str(embedded_lake)!r}]\n"
        "from morphlake.cli import main\nmain()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert last_build(embedded_lake)["build"]["mode"] == "incremental"
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_a_failing_incremental_build_keeps_the_published_pair(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    published, rows = current(embedded_lake), df03(embedded_lake)
    part = embedded_lake / EMBED_DIR / f"experiment_date={CHANGED}" / "part-00000.parquet"
    frame = pl.read_parquet(part, hive_partitioning=False)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(float("nan")).otherwise(pl.col("z_mu_05")).alias("z_mu_05")
    ).write_parquet(part)
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 1
    assert "finite_values_df03_z_: fail: Got 1 result" in result.stderr
    assert current(embedded_lake) == published and df03(embedded_lake) == rows
    assert sorted(p.name for p in (embedded_lake / "builds").iterdir()) == sorted(["current", published.name])
    assert not (embedded_lake / ".staging").exists()


def test_full_rebuilds_everything_with_dbt(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    assert cli("build", "--lake", embedded_lake, "--full").exit_code == 0
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "full" and record["build"]["reason"] == "asked for (--full)"
    assert record["dbt"]["counts"]["pass"] > 20 and "dbt_build" in record["timings_s"]


def test_a_lake_from_before_snapshots_is_moved_to_them(cli, embedded_lake):
    """An older lake has a plain warehouse file and export folder: the next build replaces them with links."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    build = current(embedded_lake)
    for public in (embedded_lake / "warehouse.duckdb", embedded_lake / "exports" / "df03"):
        public.unlink()
    shutil.copy2(build / "warehouse.duckdb", embedded_lake / "warehouse.duckdb")
    shutil.copytree(build / "df03", embedded_lake / "exports" / "df03")
    shutil.rmtree(embedded_lake / "builds")
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 0, result.output
    assert (embedded_lake / "warehouse.duckdb").is_symlink() and (embedded_lake / "exports" / "df03").is_symlink()
    assert len(df03(embedded_lake)) == 18
    assert not [p for p in (embedded_lake / "builds").iterdir() if p.name.startswith(".")]


def test_the_export_names_its_columns_even_when_empty(cli, embedded_lake):
    """df03's columns are in df03_schema.parquet beside the export (the export holds partitions only), rows or
    none: the warehouse's df03 view reads them with the export."""
    shutil.rmtree(embedded_lake / "embeddings")
    result = cli("build", "--lake", embedded_lake, "--coverage-severity", "warn")
    assert result.exit_code == 0, result.output
    assert list((embedded_lake / "exports" / "df03").iterdir()) == []
    assert "snip_id" in pq.read_schema(current(embedded_lake) / "df03_schema.parquet").names
    assert df03(embedded_lake) == []
    with duckdb.connect(str(embedded_lake / "warehouse.duckdb"), read_only=True) as con:
        assert "z_mu" in [row[0] for row in con.execute("describe df03").fetchall()]


@pytest.mark.parametrize(
    ("table", "test"),
    [
        ("raw/df02", "unique_within_stg_df02_snip_id"),
        (EMBED_DIR, "unique_within_stg_embeddings_snip_id__model_name"),
        ("raw/snips", "unique_stg_snips_snip_id"),
    ],
)
def test_a_duplicate_across_experiments_fails_an_incremental_build(cli, embedded_lake, table, test):
    """An incremental build checks the changed experiments' snip_ids against every row (unique_within; the ledger's
    plain unique, every row): a row copied from an unchanged experiment into a changed one is refused, by name."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    folder = embedded_lake / table
    stray = pl.read_parquet(folder / f"experiment_date={OTHER}" / "part-00000.parquet", hive_partitioning=False)
    part = folder / f"experiment_date={CHANGED}" / "part-00000.parquet"
    frame = pl.read_parquet(part, hive_partitioning=False)
    pl.concat([frame, stray.head(1).with_columns(pl.lit(CHANGED).alias("experiment_date"))]).write_parquet(part)
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 1
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "incremental" and record["build"]["tested"] == [CHANGED]
    assert f"{test}: fail: Got 1 result" in result.stderr


def view_reads_by_name(lake: Path, view: str) -> bool:
    """Whether the warehouse's view reads its table's files with union_by_name (files of several shapes)."""
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        sql = con.execute("select sql from duckdb_views() where view_name = $v", {"v": view}).fetchone()[0]
    assert sql.count("union_by_name = ") == 1, sql
    return "union_by_name = true" in sql


def test_a_new_df02_column_builds_in_full(cli, embedded_lake):
    """An experiment whose df02 brings a new column changes every df03 row's columns: nothing can be linked. The
    staging view, which read files of one shape without union_by_name, now reads them by name."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    assert not view_reads_by_name(embedded_lake, "stg_df02")
    part = embedded_lake / "raw" / "df02" / f"experiment_date={CHANGED}" / "part-00000.parquet"
    pl.read_parquet(part, hive_partitioning=False).with_columns(pl.lit(1.5).alias("yolk_um")).write_parquet(part)
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 0, result.output
    record = last_build(embedded_lake)
    assert record["build"]["mode"] == "full" and "definitions changed: lake" in record["build"]["reason"]
    assert view_reads_by_name(embedded_lake, "stg_df02") and not view_reads_by_name(embedded_lake, "stg_snips")
    exported = pl.read_parquet(embedded_lake / "exports" / "df03" / "*" / "*.parquet")
    assert exported.filter(pl.col("experiment_date") == OTHER)["yolk_um"].is_null().all()
