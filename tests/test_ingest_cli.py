"""Functional tests: `morphlake ingest` through the real CLI on a tiny data root in tmp_path."""

import json
import subprocess
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from conftest import lake_files

from morphlake.ingest.ledger import SNIP_SUBDIR
from morphlake.lake.data_root import DF02_RELPATH

DIGIT_EXP = "20240626"


def test_ingest_writes_all_four_raw_tables(ingested):
    for table in ("raw/df02", "raw/snips", "raw/train", "embeddings"):
        assert list((ingested / table).rglob("part-00000.parquet")), table
    counts = duckdb.sql(
        f"select count(*) from read_parquet('{ingested}/raw/df02/**/*.parquet', hive_partitioning=true)"
    ).fetchall()[0]
    assert counts == (18,)
    runs = [json.loads(p.read_text()) for p in (ingested / "runs").glob("*.json")]
    assert [r["outcome"] for r in runs] == ["complete"]
    assert runs[0]["counts"]["df02_rows"] == 18 and runs[0]["counts"]["snips"] == 18
    assert set(runs[0]["versions"]) >= {"python", "polars", "pyarrow", "duckdb"}
    assert not (ingested / ".staging").exists()


@pytest.mark.parametrize("table", ["raw/df02", "raw/snips", "embeddings"])
def test_experiment_date_is_a_string_for_every_reader(ingested, table):
    folder = ingested / table
    con = duckdb.sql(
        f"select distinct typeof(experiment_date), experiment_date from "
        f"read_parquet('{folder}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert {t for t, _ in con} == {"VARCHAR"} and (("VARCHAR", DIGIT_EXP) in con)
    frame = pl.scan_parquet(folder, hive_partitioning=True).collect()
    assert frame.schema["experiment_date"] == pl.String and DIGIT_EXP in frame["experiment_date"].to_list()
    arrow = ds.dataset(folder, partitioning="hive").to_table()
    assert pa.types.is_string(arrow.schema.field("experiment_date").type) or pa.types.is_large_string(
        arrow.schema.field("experiment_date").type
    )
    assert DIGIT_EXP in arrow["experiment_date"].to_pylist()


def test_rerun_changes_nothing(cli, root, ingested):
    before = lake_files(ingested)
    mtimes = {p: (ingested / p).stat().st_mtime_ns for p in before}
    result = cli("ingest", "--root", root, "--lake", ingested)
    assert result.exit_code == 0 and "0 partition(s) written" in result.output
    assert lake_files(ingested) == before
    assert {p: (ingested / p).stat().st_mtime_ns for p in before} == mtimes


def test_legacy_rows_are_flat_float32_with_their_naming(ingested):
    frame = pl.read_parquet(ingested / "embeddings" / "**" / "*.parquet", hive_partitioning=False)
    assert set(frame["source"]) == {"legacy_csv"}
    assert frame.schema["z_mu_00"] == pl.Float32 and frame.schema["z_sigma_99"] == pl.Float32
    naming = dict(frame.select("experiment_date", "z_naming").unique().iter_rows())
    assert naming == {DIGIT_EXP: "flat", "20250612_30hpf_ctrl_atf6": "bio_nuisance"}
    assert frame["image_fingerprint"].null_count() == 0


def df02_file(root):
    return root / DF02_RELPATH


def test_missing_column_fails_with_exit_1_and_names_it(cli, root, lake):
    frame = pl.read_csv(df02_file(root), infer_schema=False).drop("medium")
    frame.write_csv(df02_file(root))
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1
    assert "lacks required column(s): 'medium'" in result.stderr
    assert "hint: required columns are:" in result.stderr
    assert not list(lake.rglob("*.parquet"))


def test_duplicate_snip_id_fails_strict_and_is_skipped_with_allow_partial(cli, root, lake):
    frame = pl.read_csv(df02_file(root), infer_schema=False)
    dup = frame.head(1)["snip_id"][0]
    pl.concat([frame, frame.head(1)]).write_csv(df02_file(root))
    strict = cli("ingest", "--root", root, "--lake", lake)
    assert strict.exit_code == 1
    assert f"df02: {dup}" in strict.stderr and "snip_id appears more than once" in strict.stderr
    assert "--allow-partial" in strict.stderr
    assert not list(lake.rglob("*.parquet"))
    failed = [json.loads(p.read_text()) for p in (lake / "runs").glob("*.json")]
    assert failed[0]["outcome"] == "failed" and failed[0]["problems"][0]["item"] == dup

    partial = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2
    manifest = next((lake / "runs").glob("*.partial.json"))
    skipped = json.loads(manifest.read_text())["skipped"]
    items = {(s["table"], s["item"]) for s in skipped}
    assert ("df02", dup) in items
    assert ("snips", dup) not in items  # its image has no df02 row left: left out of the ledger, not an error
    ids = duckdb.sql(f"select snip_id from read_parquet('{lake}/raw/df02/**/*.parquet')").fetchall()
    assert (dup,) not in ids and len(ids) == 17


def test_unparsable_value_names_row_and_column(cli, root, lake):
    frame = pl.read_csv(df02_file(root), infer_schema=False)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(pl.lit("soon"))
        .otherwise(pl.col("predicted_stage_hpf"))
        .alias("predicted_stage_hpf")
    )
    frame.write_csv(df02_file(root))
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1
    assert "data row 5" in result.stderr and "column 'predicted_stage_hpf' has 'soon', not a number" in result.stderr


def test_empty_df02_fails(cli, root, lake):
    df02_file(root).write_bytes(b"")
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1 and "is empty (0 bytes)" in result.stderr


def test_unsafe_experiment_name_fails(cli, root, lake):
    frame = pl.read_csv(df02_file(root), infer_schema=False)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("../../etc"))
        .otherwise(pl.col("experiment_date"))
        .alias("experiment_date")
    ).write_csv(df02_file(root))
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1
    assert "'../../etc' cannot be used as a lake partition name" in result.stderr
    assert not (lake.parent / "etc").exists()


def test_bad_latent_rows_fail_strict_and_name_the_file(cli, root, lake):
    store = next((root / "analysis").rglob("morph_latents_20240626.csv"))
    frame = pl.read_csv(store, infer_schema=False)
    snip = frame["snip_id"][2]
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("inf")).otherwise(pl.col("z_mu_07")).alias("z_mu_07")
    ).write_csv(store)
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 1
    assert f"latents: {snip} ({store}, data row 3): non-finite or unparsable z value(s) in z_mu_07" in result.stderr
    partial = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2
    ids = pl.read_parquet(lake / "embeddings" / "**" / "*.parquet")["snip_id"].to_list()
    assert snip not in ids and len(ids) == 9


def test_experiments_option_limits_the_run(cli, root, lake):
    result = cli("ingest", "--root", root, "--lake", lake, "--experiments", DIGIT_EXP)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (lake / "raw" / "df02").iterdir()] == [f"experiment_date={DIGIT_EXP}"]
    bad = cli("ingest", "--root", root, "--lake", lake, "--experiments", "nope")
    assert bad.exit_code == 1 and "experiment(s) not in df02" in bad.stderr


def test_a_snip_file_without_a_df02_row_is_left_out_and_reported(cli, root, lake):
    folder = root / SNIP_SUBDIR / DIGIT_EXP
    stray = folder / f"{DIGIT_EXP}_H12_e09_t0000.jpg"  # e.g. its row was removed from df02
    stray.write_bytes(next(folder.glob("*.jpg")).read_bytes())
    result = cli("ingest", "--root", root, "--lake", lake)
    assert result.exit_code == 0, result.output
    assert f"1 image file(s) match no df02 row and are left out of the ledger: {stray.name}" in result.output
    ledger = duckdb.sql(f"select snip_id from read_parquet('{lake}/raw/snips/**/*.parquet')").fetchall()
    assert (stray.name[:-4],) not in ledger and len(ledger) == 18
    record = json.loads(next(p for p in (lake / "runs").glob("*-ingest-*.json")).read_text())
    assert any("match no df02 row" in note for note in record["notes"])


def test_crash_before_publish_leaves_lake_unchanged(cli, root, ingested):
    before = lake_files(ingested)
    frame = pl.read_csv(df02_file(root), infer_schema=False)
    frame.with_columns(pl.lit("E2").alias("medium")).write_csv(df02_file(root))
    crashed = cli.subprocess("ingest", "--root", root, "--lake", ingested, env={"MORPHLAKE_CRASH_AT": "before-publish"})
    assert crashed.returncode == 137
    assert lake_files(ingested) == before
    assert (ingested / ".staging").is_dir()  # the dead run's staging is still there...
    again = cli("ingest", "--root", root, "--lake", ingested)
    assert again.exit_code == 0, again.output
    assert "removed staging left by interrupted run" in again.stderr  # ...and the next run clears it
    assert not (ingested / ".staging").exists()
    media = duckdb.sql(f"select distinct medium from read_parquet('{ingested}/raw/df02/**/*.parquet')").fetchall()
    assert media == [("E2",)]


def test_crash_mid_publish_leaves_whole_partitions(cli, root, ingested):
    frame = pl.read_csv(df02_file(root), infer_schema=False)
    frame.with_columns(pl.lit("E2").alias("medium")).write_csv(df02_file(root))
    crashed = cli.subprocess("ingest", "--root", root, "--lake", ingested, env={"MORPHLAKE_CRASH_AT": "publish:1"})
    assert crashed.returncode == 137
    rows = duckdb.sql(
        f"select medium, count(*) from read_parquet('{ingested}/raw/df02/**/*.parquet') group by 1 order by 1"
    ).fetchall()
    assert rows == [("E2", 6), ("E3", 12)]  # one partition new, two old; none torn or doubled
    assert cli("ingest", "--root", root, "--lake", ingested).exit_code == 0
    rows = duckdb.sql(
        f"select medium, count(*) from read_parquet('{ingested}/raw/df02/**/*.parquet') group by 1"
    ).fetchall()
    assert rows == [("E2", 18)]


def test_second_writer_fails_at_once_naming_the_holder(cli, root, lake):
    holder = hold_lock_in_another_process(lake, "embed", "run-xyz")
    try:
        result = cli("ingest", "--root", root, "--lake", lake)
        assert result.exit_code == 1
        assert f"pid {holder.pid}" in result.stderr and "'embed', run run-xyz" in result.stderr
        assert "wait for it to finish, or use another --lake" in result.stderr
    finally:
        holder.kill()  # like SIGKILL: the OS releases the lock, no stale lock is left behind
        holder.wait()
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0


def hold_lock_in_another_process(lake, command, run_id):
    code = (
        "import sys, time; from morphlake.lake.layout import Lake; from morphlake.lake.lock import LakeLock\n"
        f"with LakeLock(Lake.at({str(lake)!r}).lock_file, {command!r}, {run_id!r}):\n"
        "    print('ready', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc
