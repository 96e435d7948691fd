"""Functional tests of the reading commands through the CLI: status (text and --json), sql, neighbours; and
progress lines in a job's log (no terminal)."""

import json
import logging
import os
import shutil

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from morphlake import DEFAULT_MODEL_NAME
from morphlake.common.progress import StepProgress
from morphlake.lake.data_root import DataRoot
from morphlake.lake.layout import Lake
from morphlake.lake.lock import LakeLock
from morphlake.report.neighbours import nearest

SNIP = "20240626_A01_e01_t0000"
README_NEIGHBOURS = """
select b.snip_id, array_cosine_similarity(a.z_mu, b.z_mu) as similarity
from df03 a join df03 b on a.snip_id <> b.snip_id
where a.snip_id = '{snip}'
order by similarity desc limit {k}
"""


@pytest.fixture(scope="module")
def built_template(embedded_template, tmp_path_factory):
    """The tiny embedded lake with its warehouse (built once for this module)."""
    from conftest import Cli

    lake = tmp_path_factory.mktemp("built") / "lake"
    shutil.copytree(embedded_template, lake)
    assert Cli(lake)("build", "--lake", lake).exit_code == 0
    return lake


def test_status_shows_coverage_per_model_and_experiment(cli, embedded_lake):
    result = cli("status", "--lake", embedded_lake)
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        f"model {DEFAULT_MODEL_NAME}: df02 rows with an embedding 18/18 (100.0%); usable rows 17/17 (100.0%); "
        "10 from the legacy store, 8 ONNX; 0 stale"
    ) in out
    assert "20250305_24hpf_lmx1b" in out and "legacy      0 onnx      6" in out
    assert "writing now: nothing" in out and "last failed run" not in out
    brief = cli("status", "--lake", embedded_lake, "--brief").output
    assert "20250305_24hpf_lmx1b" not in brief and "df02 rows with an embedding 18/18" in brief
    other = cli("status", "--lake", embedded_lake, "--model-name", "other")
    assert other.exit_code == 1
    assert f"has no embeddings of model other\n  hint: choose one of: {DEFAULT_MODEL_NAME}" in other.stderr


def test_status_json_stale_gone_writer_and_last_failure(cli, root, lake, encoder_path):
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    assert cli("embed", "--model", encoder_path, "--lake", lake).exit_code == 0
    # one ONNX-embedded snip's image changes; one experiment leaves df02; ingest again
    dirs = DataRoot.at(root)
    changed = dirs.snip_dir("20250305_24hpf_lmx1b") / "20250305_24hpf_lmx1b_A03_e01_t0000.jpg"
    Image.new("L", (256, 576), 90).save(changed, quality=92)
    df02 = pl.read_csv(dirs.df02)
    df02.filter(pl.col("experiment_date") != "20240626").write_csv(dirs.df02)
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    failed = cli("ingest", "--root", root, "--lake", lake, "--experiments", "nope")
    assert failed.exit_code == 1

    with LakeLock(Lake.at(lake).lock_file, "embed", "run-in-progress"):
        result = cli("status", "--lake", lake, "--json")
    assert result.exit_code == 0, result.output
    health = json.loads(result.output)
    (model,) = health["models"]
    per_exp = {e["experiment_date"]: e for e in model["experiments"]}
    assert set(per_exp) == {"20250305_24hpf_lmx1b", "20250612_30hpf_ctrl_atf6"}
    assert per_exp["20250305_24hpf_lmx1b"]["stale"] == 1 and model["total"]["stale"] == 1
    assert model["total"] == {**model["total"], "df02_rows": 12, "embedded": 12}
    assert health["not_in_df02"] == {"snips": ["20240626"], "embeddings": ["20240626"]}
    assert health["writer"]["pid"] == os.getpid() and health["writer"]["command"] == "embed"
    last = health["last_failed_run"]
    assert last["command"] == "ingest" and "nope" in last["error"] and last["hint"]

    text = cli("status", "--lake", lake).output
    assert "1 stale" in text and "not in df02 (kept in snips, left out of df03): 20240626" in text
    assert "writing now: nothing" in text  # the lock was released
    assert "last failed run:" in text and "    error: experiment(s) not in df02 " in text
    assert "    hint: " in text


def test_status_json_without_a_lake(cli, tmp_path):
    result = cli("status", "--lake", tmp_path / "none", "--json")
    assert result.exit_code == 1 and "no lake at" in json.loads(result.stdout)["error"]


def test_sql_prints_writes_and_is_read_only(cli, built_template, tmp_path):
    lake = built_template
    shown = cli("sql", "--lake", lake, "select snip_id, short_pert_name from df03 order by snip_id limit 3")
    assert shown.exit_code == 0, shown.output
    assert "snip_id" in shown.output and SNIP in shown.output

    query = "select experiment_date, df02_rows, coverage_all from df03_coverage order by 1"
    for name in ("cov.csv", "cov.parquet"):
        out = tmp_path / name
        result = cli("sql", "--lake", lake, query, "-o", out)
        assert result.exit_code == 0 and f"wrote {out} (3 rows)" in result.output
        frame = pl.read_csv(out) if name.endswith(".csv") else pl.read_parquet(out)
        assert frame["experiment_date"].dtype == pl.String and frame["df02_rows"].to_list() == [6, 6, 6]
    assert not list(tmp_path.glob(".cov*"))  # no temporaries left

    bad = cli("sql", "--lake", lake, query, "-o", tmp_path / "cov.xlsx")
    assert bad.exit_code == 1 and "name it *.csv or *.parquet" in bad.stderr
    wrong = cli("sql", "--lake", lake, "select * from nope")
    assert wrong.exit_code == 1 and "the query failed on the warehouse" in wrong.stderr and "df03" in wrong.stderr
    write = cli("sql", "--lake", lake, "create table x as select 1")
    assert write.exit_code == 1 and "runs queries only; this statement is CREATE, and it was not run" in write.stderr
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert "x" not in {r[0] for r in con.execute("show tables").fetchall()}


def test_sql_reads_the_raw_lake_without_a_warehouse(cli, embedded_lake):
    result = cli("sql", "--lake", embedded_lake, "select source, count(*) as n from embeddings group by all order by 1")
    assert result.exit_code == 0, result.output
    assert "legacy_csv" in result.output and "onnx" in result.output
    typed = cli("sql", "--lake", embedded_lake, "select typeof(experiment_date) as t from df02 limit 1")
    assert "VARCHAR" in typed.output
    no_df03 = cli("sql", "--lake", embedded_lake, "select * from df03")
    assert no_df03.exit_code == 1 and "the query failed on the raw lake" in no_df03.stderr
    assert "df02, embeddings, snips, train" in no_df03.stderr and "run `morphlake build`" in no_df03.stderr


def test_neighbours_match_the_readme_query(cli, built_template):
    lake = built_template
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        expected = con.execute(README_NEIGHBOURS.format(snip=SNIP, k=5)).fetchall()
    got = nearest(Lake.at(lake), SNIP, model_name=DEFAULT_MODEL_NAME, k=5).table.rows()
    assert [r[1] for r in got] == [r[0] for r in expected]
    assert [r[2] for r in got] == pytest.approx([r[1] for r in expected], abs=1e-5)
    assert [r[0] for r in got] == [1, 2, 3, 4, 5]

    result = cli("neighbours", SNIP, "-k", "3", "--lake", lake)
    assert result.exit_code == 0, result.output
    assert expected[0][0] in result.output and "perturbation" in result.output
    unknown = cli("neighbours", SNIP[:-1], "--lake", lake)
    assert unknown.exit_code == 1
    assert f"snip {SNIP[:-1]} has no embedding of model {DEFAULT_MODEL_NAME}" in unknown.stderr
    assert SNIP in unknown.stderr  # the closest ids are suggested
    other = cli("neighbours", SNIP, "--model-name", "other", "--lake", lake)
    assert other.exit_code == 1 and f"choose one of: {DEFAULT_MODEL_NAME}" in other.stderr


def test_neighbours_leave_out_snips_no_longer_in_df02(cli, root, lake, encoder_path):
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    assert cli("embed", "--model", encoder_path, "--lake", lake).exit_code == 0
    snip = "20250305_24hpf_lmx1b_A03_e01_t0000"
    before = nearest(Lake.at(lake), snip, model_name=DEFAULT_MODEL_NAME, k=3).table
    assert "20240626" in before["experiment_date"].to_list()  # its nearest include the experiment that leaves
    df02 = DataRoot.at(root).df02
    pl.read_csv(df02).filter(pl.col("experiment_date") != "20240626").write_csv(df02)
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    usual = nearest(Lake.at(lake), snip, model_name=DEFAULT_MODEL_NAME, k=3).table
    every = nearest(Lake.at(lake), snip, model_name=DEFAULT_MODEL_NAME, k=3, candidates=1).table  # df02 filter first
    assert usual.equals(every) and usual.height == 3 and "20240626" not in usual["experiment_date"].to_list()


def test_progress_lines_without_a_terminal(caplog):
    now = [0.0]
    progress = StepProgress("embed", 1000, unit="snips", every=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="morphlake"):
        now[0] = 5
        progress.update(100)  # before the first interval: nothing
        now[0] = 10
        progress.update(250)
        now[0] = 15
        progress.update(400)  # within the interval: nothing
    assert [r.getMessage() for r in caplog.records] == ["embed: 250/1000 snips (25%), 25/s, 30s left"]


def test_embed_logs_progress_in_a_job_log(cli, ingested, encoder_path):
    result = cli("embed", "--model", encoder_path, "--lake", ingested, env={"MORPHLAKE_PROGRESS_SECONDS": "0"})
    assert result.exit_code == 0, result.output
    assert "embed: 8/8 snips (100%)" in result.stderr
    assert pq.read_metadata(next(ingested.glob("embeddings/*/experiment_date=20250305_24hpf_lmx1b/*.parquet")))
