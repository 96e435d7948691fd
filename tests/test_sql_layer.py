"""Functional tests: real `dbt build` (through `morphlake build` and plain dbt) on a tiny lake in tmp_path."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from plain_dbt import PROJECT, plain_dbt

from morphlake import DEFAULT_MODEL_NAME

EMBED_DIR = f"embeddings/model_name={DEFAULT_MODEL_NAME}"


def query(lake: Path, sql: str):
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def edit_partition(path: Path, change) -> None:
    """Rewrite a lake file behind morphlake's back (to plant bad data)."""
    frame = change(pl.read_parquet(path, hive_partitioning=False))
    frame.write_parquet(path)


def test_build_passes_on_good_data(cli, embedded_lake):
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 0, result.output
    assert "df03: 18 rows" in result.output
    assert "coverage: 18/18 (100.0%) df02 rows have an embedding; usable rows (use_embryo_flag): 17/17" in result.output
    record = json.loads(next(embedded_lake.glob("runs/*-build-*.json")).read_text())
    assert record["outcome"] == "complete" and record["dbt"]["counts"].get("pass", 0) > 20
    # dbt started once (one parse for both builds), each phase's time and peak resident memory recorded
    assert list(record["timings_s"]) == ["tidy", "plan", "dbt_parse", "dbt_build", "export", "dbt_df03", "publish"]
    assert set(record["peak_rss_mib"]) == set(record["timings_s"]) and min(record["peak_rss_mib"].values()) > 20
    dbt_log = Path(record["dbt_log"]).read_text()
    # parse (in full: a new lake), then two builds from its manifest, which parse nothing again
    assert dbt_log.count("Running with dbt=") == 3 and dbt_log.count("parsing") == 1, dbt_log
    assert "START unit_test" not in dbt_log  # unit tests check the SQL, not the data: plain `dbt build` runs them
    assert query(embedded_lake, "select count(*), count(distinct snip_id) from df03") == [(18, 18)]
    # auto picks the legacy store's naming: bio_nuisance for this model (one of its store files uses it)
    cols = [r[0] for r in query(embedded_lake, "select column_name from (describe df03)")]
    assert {"z_mu_n_00", "z_mu_n_19", "z_mu_b_20", "z_mu", "embedding_source"} <= set(cols)
    # the log-variances are one join away, named the same way (the legacy df03 and the export carry z_mu only)
    assert not [c for c in cols if c.startswith("z_sigma")]
    sigma = [r[0] for r in query(embedded_lake, "select column_name from (describe df03_z_sigma)")]
    assert sigma[:4] == ["snip_id", "experiment_date", "embedding_run_id", "z_sigma_n_00"]
    assert sigma[-1] == "z_sigma_b_99"
    assert cols[:3] == ["snip_id", "embryo_id", "experiment_date"]
    assert query(embedded_lake, "select typeof(z_mu) from df03 limit 1") == [("FLOAT[100]",)]


def test_flat_schema_and_vector_search(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake, "--z-schema", "flat").exit_code == 0
    cols = {r[0] for r in query(embedded_lake, "select column_name from (describe df03)")}
    assert "z_mu_00" in cols and "z_mu_n_00" not in cols
    rows = query(
        embedded_lake,
        """
        select b.snip_id, array_cosine_similarity(a.z_mu, b.z_mu) as similarity
        from df03 a, df03 b where a.snip_id = '20240626_A01_e01_t0000' order by similarity desc limit 3""",
    )
    assert rows[0][0] == "20240626_A01_e01_t0000" and rows[0][1] == pytest.approx(1.0)
    z = np.array(query(embedded_lake, "select z_mu_00, z_mu_99 from df03 order by snip_id"))
    vec = np.array(query(embedded_lake, "select z_mu[1], z_mu[100] from df03 order by snip_id"))
    assert np.array_equal(z, vec)


def test_duplicated_snip_id_fails_the_uniqueness_tests(cli, embedded_lake):
    parts = sorted((embedded_lake / EMBED_DIR).glob("*/part-00000.parquet"))
    stray = pl.read_parquet(parts[0], hive_partitioning=False).head(1)
    edit_partition(
        parts[1], lambda f: pl.concat([f, stray.with_columns(pl.lit(f["experiment_date"][0]).alias("experiment_date"))])
    )
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 1
    assert "unique_within_stg_embeddings_snip_id__model_name: fail: Got 1 result" in result.stderr
    skipped = result.stderr.split("skipped because of the failures above: ")[1].split("\n")[0].split(", ")
    assert "int_df03" in skipped and "df03_coverage" in skipped
    assert not (embedded_lake / "builds" / "current").exists()  # nothing published: no df03 export either
    # dbt's own lines are in the run's log, named in the message
    log = Path(result.stderr.split("dbt's log: ")[1].split("\n")[0])
    assert log.parent == embedded_lake / "runs" and re.fullmatch(r"\S+-build-\w+\.dbt\.log", log.name)
    assert "Failure in test unique_within_stg_embeddings_snip_id__model_name" in log.read_text()


def test_a_build_on_a_pipe_prints_progress_and_a_summary_not_dbts_log(cli, embedded_lake):
    done = cli.subprocess("build", "--lake", embedded_lake)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr  # no terminal codes where there is no terminal
    assert done.stdout.startswith("df03: 18 rows") and len(done.stdout.splitlines()) == 9  # the summary alone
    parse, *progress = done.stderr.splitlines()[-5:]
    assert parse == "build: dbt: parse the project"
    assert progress[0] == "build: dbt: staging views, int_df03, df03_coverage, train_embeddings, their tests"
    assert re.fullmatch(r"build: dbt: 21 passed, 7 built in [0-9.]+ s", progress[1])  # no unit tests
    assert progress[2] == "build: dbt: df03 over the new export, df03_z_sigma, their tests"
    assert re.fullmatch(r"build: dbt: 4 passed, 2 built in [0-9.]+ s", progress[3])
    record = json.loads(sorted(embedded_lake.glob("runs/*-build-*.json"))[-1].read_text())
    log = Path(record["dbt_log"]).read_text()
    assert "Running with dbt=" in log and "Completed successfully" in log
    assert "Running with dbt" not in done.stdout + done.stderr


def test_low_coverage_fails_and_can_be_a_warning(cli, embedded_lake):
    (embedded_lake / EMBED_DIR / "experiment_date=20250305_24hpf_lmx1b" / "part-00000.parquet").unlink()
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code == 1
    assert "coverage_df03_coverage_embedded_rows__usable_rows: fail" in result.stderr
    assert "coverage_all_rows: fail" not in result.stderr  # a warning, as in the legacy step, naming its figures
    assert "warning: coverage_all_rows: warn: Got 1 result" in result.stderr
    assert "(all experiments), 18, 12, 0.6666666666666666, 0.95" in result.stderr
    lowered = cli("build", "--lake", embedded_lake, "--coverage-threshold", "0.5")
    assert lowered.exit_code == 0, lowered.output
    warned = cli("build", "--lake", embedded_lake, "--coverage-severity", "warn")
    assert warned.exit_code == 0 and "usable rows (use_embryo_flag): 11/17" in warned.output


def test_non_finite_z_value_fails_the_finite_test(cli, embedded_lake):
    part = next((embedded_lake / EMBED_DIR).glob("experiment_date=20240626/part-00000.parquet"))
    edit_partition(
        part,
        lambda f: f.with_columns(
            pl.when(pl.int_range(pl.len()) == 2).then(float("nan")).otherwise(pl.col("z_sigma_42")).alias("z_sigma_42")
        ),
    )
    result = cli("build", "--lake", embedded_lake, "--z-schema", "flat")
    assert result.exit_code == 1
    assert "finite_values_stg_embeddings_z_sigma_: fail: Got 1 result" in result.stderr  # the model's z_sigma


def test_warehouse_opens_from_any_directory(cli, embedded_lake, tmp_path):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    warehouse = str(embedded_lake / "warehouse.duckdb")
    code = (
        f"import duckdb; print(duckdb.connect({warehouse!r}, read_only=True)"
        ".execute('select count(*) from df03').fetchall()[0][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "18"


def test_export_is_read_back_and_rerun_replaces_it(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    export = embedded_lake / "exports" / "df03"
    files = sorted(export.glob("*/*.parquet"))
    assert [f.parent.name for f in files] == [
        "experiment_date=20240626",
        "experiment_date=20250305_24hpf_lmx1b",
        "experiment_date=20250612_30hpf_ctrl_atf6",
    ]
    table = ds.dataset(export, partitioning="hive").to_table()
    assert table.num_rows == 18 and str(table.schema.field("experiment_date").type) == "string"
    assert str(table.schema.field("z_mu_b_20").type) == "float" and "z_mu" not in table.schema.names
    # the README's way back to the vector, from the exported columns
    rebuilt = duckdb.sql(
        f"select snip_id, list_value(*COLUMNS('^z_mu_'))::FLOAT[100] as v "
        f"from read_parquet('{export}/*/*.parquet') order by snip_id"
    ).fetchall()
    warehouse = duckdb.connect(str(embedded_lake / "warehouse.duckdb"), read_only=True)
    assert rebuilt == warehouse.sql("select snip_id, z_mu from df03 order by snip_id").fetchall()
    warehouse.close()
    frame = pl.scan_parquet(export, hive_partitioning=True).collect()
    assert frame.height == 18 and frame.schema["experiment_date"] == pl.String
    assert frame.filter(pl.col("experiment_date") == "20240626").height == 6

    # an experiment leaves df03: its export partition goes, the others are rewritten whole
    (embedded_lake / EMBED_DIR / "experiment_date=20240626" / "part-00000.parquet").unlink()
    assert cli("build", "--lake", embedded_lake, "--coverage-severity", "warn").exit_code == 0
    assert sorted(p.name for p in export.iterdir()) == [
        "experiment_date=20250305_24hpf_lmx1b",
        "experiment_date=20250612_30hpf_ctrl_atf6",
    ]
    assert pq.read_table(export, partitioning=None).num_rows == 12
    assert not (embedded_lake / ".staging").exists()


def test_empty_df03_writes_no_sentinel_row(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    for part in (embedded_lake / EMBED_DIR).glob("*/part-00000.parquet"):
        part.unlink()
    result = cli("build", "--lake", embedded_lake, "--coverage-severity", "warn")
    assert result.exit_code == 0, result.output
    assert query(embedded_lake, "select count(*) from df03") == [(0,)]
    assert not list((embedded_lake / "exports" / "df03").glob("*/*.parquet"))


def test_plain_dbt_build_inside_the_project(embedded_lake):
    """Before any morphlake build: the views, df03 as int_df03 itself, and the tests, dbt's unit tests included
    (`morphlake build` leaves those out: they check the SQL, not the data)."""
    out = plain_dbt(embedded_lake, "build")
    assert out.returncode == 0, out.stdout[-3000:]
    for unit in ("df03_joins_every_df02_row_with_the_chosen_model", "df03_z_sigma_names_the_log_variances_like"):
        assert f"PASS int_df03::{unit}" in out.stdout or f"PASS df03_z_sigma::{unit}" in out.stdout, unit
    join = "select count(*) from df03 join df03_z_sigma using (snip_id, experiment_date, embedding_run_id)"
    z_sigma = query(embedded_lake, join)
    assert z_sigma == [(18,)]
    assert query(embedded_lake, "select count(*) from df03") == [(18,)]
    assert not (PROJECT / ".user.yml").exists()


def df03_view(lake: Path) -> str:
    return query(lake, "select sql from duckdb_views() where view_name = 'df03'")[0][0]


@pytest.mark.parametrize("plain", [("build",), ("run", "--select", "df03")], ids=["dbt build", "dbt run -s df03"])
def test_a_plain_dbt_run_between_builds_makes_the_next_build_full(cli, embedded_lake, plain):
    """The snapshot promise: plain dbt writes the published warehouse in place (its df03 then reads whatever build
    is current, not its own); the next morphlake build notices, even with no data changed, and builds in full."""
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    published = embedded_lake / "builds" / os.readlink(embedded_lake / "builds" / "current")
    assert f"'{published}/**/*.parquet'" in df03_view(embedded_lake)
    out = plain_dbt(embedded_lake, *plain)
    assert out.returncode == 0, out.stdout[-3000:]
    assert f"'{embedded_lake}/builds/current/**/*.parquet'" in df03_view(embedded_lake)
    assert query(embedded_lake, "select count(*) from df03") == [(18,)]

    assert cli("build", "--lake", embedded_lake).exit_code == 0
    record = json.loads(sorted(embedded_lake.glob("runs/*-build-*.json"))[-1].read_text())
    assert record["build"]["mode"] == "full"
    assert f"the warehouse of build {published.name} is not the file that build published" in record["build"]["reason"]
    rebuilt = embedded_lake / "builds" / os.readlink(embedded_lake / "builds" / "current")
    assert rebuilt != published and f"'{rebuilt}/**/*.parquet'" in df03_view(embedded_lake)
    # that build is morphlake's own again: the next one has nothing to do
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    record = json.loads(sorted(embedded_lake.glob("runs/*-build-*.json"))[-1].read_text())
    assert record["build"]["mode"] == "unchanged"


def test_docs_show_lineage_from_the_lake_sources(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    out = plain_dbt(embedded_lake, "docs", "generate")
    assert out.returncode == 0, out.stdout[-3000:]
    manifest = json.loads((embedded_lake / ".dbt-target" / "manifest.json").read_text())
    sources = manifest["sources"]
    assert sources["source.morphlake.lake.df02"]["columns"]["use_embryo_flag"]["description"]
    for table in ("df02", "train", "snips", "embeddings"):
        stg = manifest["nodes"][f"model.morphlake.stg_{table}"]
        assert stg["depends_on"]["nodes"] == [f"source.morphlake.lake.{table}"]
    assert "model.morphlake.int_df03" in manifest["nodes"]["model.morphlake.df03"]["depends_on"]["nodes"]


def test_failed_build_keeps_the_published_warehouse(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake, "--z-schema", "flat").exit_code == 0
    before = (embedded_lake / "warehouse.duckdb").read_bytes()
    (embedded_lake / EMBED_DIR / "experiment_date=20250305_24hpf_lmx1b" / "part-00000.parquet").unlink()
    failed = cli("build", "--lake", embedded_lake, "--z-schema", "bio_nuisance")
    assert failed.exit_code == 1
    assert (embedded_lake / "warehouse.duckdb").read_bytes() == before
    cols = {r[0] for r in query(embedded_lake, "select column_name from (describe df03)")}
    assert "z_mu_00" in cols  # still the flat build that succeeded
    record = json.loads(sorted(embedded_lake.glob("runs/*-build-*.json"))[-1].read_text())
    assert record["outcome"] == "failed" and record["warehouse"].startswith("unchanged")
    assert not (embedded_lake / ".staging").exists()


def test_a_build_that_raises_still_leaves_its_failed_record(embedded_lake, monkeypatch):
    from dbt.cli.main import dbtRunner

    from morphlake.lake.layout import Lake
    from morphlake.steps.build.step import run_build

    def explode(self, args):
        raise RuntimeError("dbt blew up")

    monkeypatch.setattr(dbtRunner, "invoke", explode)
    with pytest.raises(RuntimeError, match="dbt blew up"):
        run_build(Lake.at(embedded_lake), DEFAULT_MODEL_NAME)
    records = [json.loads(p.read_text()) for p in (embedded_lake / "runs").glob("*-build-*.json")]
    assert [(r["outcome"], r["error"]) for r in records] == [("failed", "RuntimeError: dbt blew up")]
    assert not (embedded_lake / "warehouse.duckdb").exists() and not (embedded_lake / ".staging").exists()


def test_a_checkout_project_that_the_build_does_not_use_is_said(tmp_path, monkeypatch, caplog):
    """After a non-editable install, `morphlake build` runs the installed dbt project; an edited ./dbt_project beside
    it would be left out silently: the build says so."""
    import logging
    import shutil

    from morphlake.steps.build.step import find_project, warn_if_shadowed

    used = find_project()
    here = tmp_path / "dbt_project"
    shutil.copytree(used, here, ignore=shutil.ignore_patterns("target", "logs"))
    (here / ".sqlfluff").write_text("[sqlfluff]\n")  # a checkout's lint settings, which no wheel ships: not a change
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="morphlake"):
        warn_if_shadowed(used)
        assert not caplog.records  # the same project: nothing to say
        model = here / "models" / "marts" / "df03.sql"
        model.write_text("-- edited\n" + model.read_text())
        warn_if_shadowed(used)
    assert "./dbt_project differs from it and is not used" in caplog.text and "--project-dir dbt_project" in caplog.text


def test_the_project_is_found_from_any_folder(tmp_path, monkeypatch):
    """The installed project (a wheel's package data, or the checkout's dbt_project/ for an editable install) is
    found from the morphlake package, wherever the build's modules live in it: not only from the checkout's root."""
    from morphlake.steps.build.step import find_project

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORPHLAKE_DBT_PROJECT", raising=False)
    assert (find_project() / "dbt_project.yml").is_file()
