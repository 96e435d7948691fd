"""The hostile- and careless-user corpus (issue 22): every promise of the README's "Guarantees" that a user could
break by mistake or on purpose, through the real CLI. Never a traceback; nothing written where it must not be."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import onnx
import polars as pl
import pytest
from conftest import TINY, Cli

from morphlake import DEFAULT_MODEL_NAME
from morphlake.lake import builds as builds_module
from morphlake.lake.data_root import DataRoot
from morphlake.lake.layout import Lake, read_part

SNIPS = TINY.embryos * TINY.timepoints * TINY.experiments
ONNX_EXP = "20250305_24hpf_lmx1b"  # no legacy store file: embedded with the ONNX encoder
ONNX_SNIP = f"{ONNX_EXP}_A03_e01_t0000"
STORE_EXP = "20240626"


@pytest.fixture(scope="module")
def built(embedded_template, tmp_path_factory) -> Path:
    """The tiny embedded lake with its warehouse (built once for this module; tests copy it)."""
    lake = tmp_path_factory.mktemp("built") / "lake"
    shutil.copytree(embedded_template, lake)
    assert Cli(lake)("build", "--lake", lake).exit_code == 0
    return lake


@pytest.fixture
def built_lake(built, tmp_path) -> Path:
    lake = tmp_path / "lake"
    shutil.copytree(built, lake, symlinks=True)
    # the views hold the absolute path of the lake they were built in: build the copy once more
    assert Cli(lake)("build", "--lake", lake).exit_code == 0
    return lake


def snapshot(lake: Path) -> dict[str, bytes]:
    """Every file of the lake but the run records (a refused command may write none, but reads them)."""
    files = {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}
    return {name: data for name, data in files.items() if not name.startswith("runs/")}


# 1. `sql` cannot write: one statement, of a kind that only reads.

WRITES = [
    "copy (select * from df03) to '{lake}/exports/df03/experiment_date=20240626/part-00000.parquet'",
    "copy (select 1 as snip_id) to '{lake}/raw/df02/experiment_date=20240626/part-00000.parquet'",
    "export database '{tmp}/exported'",
    "attach '{lake}/warehouse.duckdb' as w",
    "detach memory",
    "explain analyze copy (select 1) to '{tmp}/explained.csv'",
    "/* a comment first */ explain analyze copy (select 1) to '{tmp}/explained.csv'",
    "/* /* nested */ explain select 1 -- */ explain analyze copy (select 1) to '{tmp}/explained.csv'",
    "explain /* between */ analyze copy (select 1) to '{tmp}/explained.csv'",
    "create table x as select 1",
    "create or replace view df03 as select 1",
    "drop view df03",
    "insert into df03 select * from df03",
    "pragma enable_profiling",
    "set threads = 1",
    "call checkpoint()",
    "install httpfs",
    "load parquet",
    "pivot df03 on experiment_date using count(*)",
]


@pytest.mark.parametrize("raw", [False, True], ids=["warehouse", "raw"])
@pytest.mark.parametrize("statement", WRITES)
def test_sql_refuses_every_statement_that_could_write(statement, raw, cli, built, tmp_path):
    before = snapshot(built)
    query = statement.format(lake=built, tmp=tmp_path)
    result = cli("sql", "--lake", built, query, *(["--raw"] if raw else []))
    assert result.exit_code == 1, result.output
    assert "it was not run" in result.stderr and "Traceback" not in result.output
    assert snapshot(built) == before
    assert not list(tmp_path.iterdir())  # nothing written outside the lake either


def test_sql_runs_one_statement_and_every_kind_of_query(cli, built):
    two = cli("sql", "--lake", built, "select 1; select 2")
    assert two.exit_code == 1 and "one statement at a time; this has 2" in two.stderr
    for query in (
        "select count(*) as n from df03",
        "from df03 limit 1",
        "with a as (select 1 as x) select * from a",
        "show tables",
        "describe df03",
        "summarize select 1 as x",
        "explain select count(*) from df03",
        "values (1)",
    ):
        result = cli("sql", "--lake", built, query)
        assert result.exit_code == 0, (query, result.output)


def test_outputs_a_user_names_are_never_written_into_the_lake(cli, built, tmp_path):
    before = snapshot(built)
    (tmp_path / "into-lake").symlink_to(built)
    refused = [
        ("sql", "select 1", "-o", built / "exports" / "df03" / "x.parquet"),
        ("sql", "select 1", "-o", built / "runs" / "x.csv"),
        ("sql", "select 1", "-o", tmp_path / "into-lake" / "x.csv"),  # through a link
        ("report", "-o", built / "warehouse.duckdb"),
        ("report", "-o", built / "report.html"),
    ]
    for command, *args in refused:
        result = cli(command, "--lake", built, *args)
        assert result.exit_code == 1, result.output
        assert "is inside the lake" in result.stderr and "write it outside the lake" in result.stderr
    assert snapshot(built) == before
    demo = cli("demo", "--lake", built, "--root", built / "demo-data")
    assert demo.exit_code == 1 and "--root" in demo.stderr and "is inside the lake" in demo.stderr
    assert snapshot(built) == before


# 2. A snip whose image goes away never wedges the build.


def test_a_vanished_image_is_marked_warned_about_and_can_be_retired(cli, root, built_lake, encoder_path):
    lake = built_lake
    DataRoot.at(root).snip_dir(ONNX_EXP).joinpath(f"{ONNX_SNIP}.jpg").unlink()
    ingest = cli("ingest", "--root", root, "--lake", lake)
    assert ingest.exit_code == 0, ingest.output
    assert "1 snip image(s) in the ledger are gone" in ingest.stderr and ONNX_SNIP in ingest.stderr
    ledger = read_part(Lake.at(lake).partition_file("snips", experiment_date=ONNX_EXP)).to_pylist()
    assert {r["snip_id"]: r["image_status"] for r in ledger}[ONNX_SNIP] == "missing"

    build = cli("build", "--lake", lake)
    assert build.exit_code == 0, build.output  # a warning, never a wedged build
    assert "warning: image_available_stg_embeddings" in build.stderr
    assert f"{ONNX_SNIP}, {ONNX_EXP}, {DEFAULT_MODEL_NAME}, missing" in build.stderr
    assert "--retire-missing" in build.stderr
    status = cli("status", "--lake", lake)
    assert "1 whose image is gone" in status.output and "--retire-missing" in status.output
    embed = cli("embed", "--model", encoder_path, "--lake", lake)
    assert embed.exit_code == 0 and "embedded 0 snip(s)" in embed.stderr  # the vanished snip is not embedded

    retire = cli("ingest", "--root", root, "--lake", lake, "--retire-missing")
    assert retire.exit_code == 0, retire.output
    embeddings = read_part(
        Lake.at(lake).partition_file("embeddings", model_name=DEFAULT_MODEL_NAME, experiment_date=ONNX_EXP)
    )
    assert ONNX_SNIP not in embeddings["snip_id"].to_pylist()
    ledger = read_part(Lake.at(lake).partition_file("snips", experiment_date=ONNX_EXP))
    assert ONNX_SNIP not in ledger["snip_id"].to_pylist()
    again = cli("build", "--lake", lake, "--coverage-severity", "warn")  # 17 of 18 df02 rows: under the 95%
    assert again.exit_code == 0 and "warning: image_available" not in again.stderr, again.output
    assert "df03: 17 rows" in again.output


def test_a_snip_that_became_unreadable_is_marked_and_warned_about(cli, root, built_lake):
    lake = built_lake
    DataRoot.at(root).snip_dir(ONNX_EXP).joinpath(f"{ONNX_SNIP}.jpg").write_bytes(b"")
    strict = cli("ingest", "--root", root, "--lake", lake)
    assert strict.exit_code == 1 and "is an empty file" in strict.stderr
    partial = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2, partial.output
    build = cli("build", "--lake", lake)
    assert build.exit_code == 0 and f"{ONNX_SNIP}, {ONNX_EXP}, {DEFAULT_MODEL_NAME}, unreadable" in build.stderr


def test_a_snip_image_moved_to_another_experiment_folder_is_not_in_the_ledger_twice(cli, root, built_lake):
    lake = built_lake
    dirs = DataRoot.at(root)
    dirs.snip_dir(ONNX_EXP).joinpath(f"{ONNX_SNIP}.jpg").rename(dirs.snip_dir(STORE_EXP) / f"{ONNX_SNIP}.jpg")
    ingest = cli("ingest", "--root", root, "--lake", lake)
    assert ingest.exit_code == 0, ingest.output
    assert "belong to another experiment's df02 rows" in ingest.stderr and "move them" in ingest.stderr
    ledgers = [read_part(p) for p in lake.glob("raw/snips/*/part-00000.parquet")]
    assert sum(t["snip_id"].to_pylist().count(ONNX_SNIP) for t in ledgers) == 1
    build = cli("build", "--lake", lake)
    assert build.exit_code == 0, build.output  # warned about, never wedged
    assert f"{ONNX_SNIP}, {ONNX_EXP}, {DEFAULT_MODEL_NAME}, not in the ledger" in build.stderr


def test_a_lake_wedged_before_the_ledger_kept_vanished_snips_gets_out(cli, root, built_lake):
    """A ledger written by an older morphlake dropped the vanished snip's row: the build warns, naming it as not
    in the ledger, and --retire-missing gets out."""
    lake = built_lake
    ledger_file = Lake.at(lake).partition_file("snips", experiment_date=ONNX_EXP)
    ledger = pl.read_parquet(ledger_file).filter(pl.col("snip_id") != ONNX_SNIP).drop("image_status")
    ledger.write_parquet(ledger_file)
    DataRoot.at(root).snip_dir(ONNX_EXP).joinpath(f"{ONNX_SNIP}.jpg").unlink()
    build = cli("build", "--lake", lake)
    assert build.exit_code == 0 and f"{ONNX_SNIP}, {ONNX_EXP}, {DEFAULT_MODEL_NAME}, not in the ledger" in build.stderr
    assert cli("ingest", "--root", root, "--lake", lake, "--retire-missing").exit_code == 0
    assert "image_available" not in cli("build", "--lake", lake, "--coverage-severity", "warn").stderr


# 3. A reader of a removed build gets an error, never part of its rows.


def test_a_reader_held_across_builds_gets_an_error_never_partial_rows(cli, built_lake, monkeypatch):
    lake = built_lake
    first = os.path.realpath(lake / "warehouse.duckdb")  # its own path: the public link moves on
    reader = duckdb.connect(first, read_only=True)
    assert reader.execute("select count(*) from df03").fetchone()[0] == SNIPS
    seen = []
    real_rmtree = shutil.rmtree

    def reading_rmtree(path, *args, **kwargs):  # what the reader sees the moment a build's deletion starts
        if not Path(path).name.startswith(builds_module.REMOVING):
            return real_rmtree(path, *args, **kwargs)
        try:
            seen.append((Path(path).name, reader.execute("select count(*) from df03").fetchone()[0]))
        except duckdb.Error as error:
            seen.append((Path(path).name, type(error).__name__))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(builds_module.shutil, "rmtree", reading_rmtree)
    for _ in range(2):  # the first build stays as the one before current; the second removes it
        assert cli("build", "--lake", lake, "--full").exit_code == 0
    # while another build goes, the reader reads its own rows; when its build goes, an error at once, before any of
    # its files is deleted
    own = builds_module.REMOVING + Path(first).parent.name
    assert all(count == SNIPS for name, count in seen if name != own), seen
    assert [count for name, count in seen if name == own] == ["IOException"], seen
    with pytest.raises(duckdb.Error):
        reader.execute("select count(*) from df03").fetchall()


# 4. Odd paths: quotes, brackets, * and non-ASCII work in every command; ? and # are refused up front.


def test_every_command_works_under_a_path_with_quotes_brackets_stars_and_accents(demo_template, tmp_path):
    base = tmp_path / "it's [lab] *new* é"
    root, lake = base / "data root", base / "my lake"
    shutil.copytree(demo_template, root, symlinks=True)
    cli = Cli(lake)
    encoder = root / "models" / "legacy" / DEFAULT_MODEL_NAME / "encoder.onnx"
    for args in (
        ("ingest", "--root", root),
        ("embed", "--model", encoder),
        ("build",),
        ("status",),
        ("status", "--json"),
        ("sql", "select count(*) as n from df03"),
        ("sql", "--raw", "select count(*) as n from embeddings"),
        ("neighbours", "20240626_A01_e01_t0000", "-k", "2"),
        ("report", "-o", tmp_path / "report.html"),
        ("build", "--full"),
        ("build06", "--root", root, "--data-root", root, "--allow-partial", "--overwrite"),
        ("build",),  # build06 built with its own vars: this one is full again
    ):
        result = cli(*args, "--lake", lake)
        assert result.exit_code in (0, 2), (args, result.output)
        assert "Traceback" not in result.output
    assert json.loads(cli("status", "--json", "--lake", lake).output)["models"][0]["total"]["embedded"] == SNIPS
    # an incremental build after one experiment's df02 rows changed
    df02 = DataRoot.at(root).df02
    pl.read_csv(df02, glob=False).with_columns(pl.lit("E3 + PTU").alias("medium")).write_csv(df02)
    assert cli("ingest", "--root", root, "--lake", lake).exit_code == 0
    build = cli("build", "--lake", lake)
    assert build.exit_code == 0 and "incremental" in build.stderr, build.output
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*), min(medium) from df03").fetchone() == (SNIPS, "E3 + PTU")


@pytest.mark.parametrize("char", ["?", "#", "\\"])
def test_a_lake_path_dbt_cannot_use_is_refused_up_front(char, cli, root, tmp_path):
    lake = tmp_path / f"lake{char}1"
    for args in (("ingest", "--root", root), ("status",), ("sql", "select 1"), ("build",)):
        result = cli(*args, "--lake", lake)
        assert result.exit_code == 1, result.output
        assert f"holds '{char}'" in result.stderr and "no ?, # or \\" in result.stderr
    assert not lake.exists()


def test_the_dbt_project_escapes_globs_as_morphlake_does():
    from morphlake.common.sqltext import _GLOB_ESCAPES

    macros = (Path(__file__).parents[1] / "dbt_project" / "macros" / "lake.sql").read_text()
    body = macros.split("{% macro glob_escape(path) -%}")[1].split("{%- endmacro %}")[0]
    assert re.findall(r"replace\('(.)', '([^']*)'\)", body) == list(_GLOB_ESCAPES)


# 5. All-zero vectors: kept, said, never ranked first.


def test_all_zero_z_mu_rows_are_said_left_out_of_neighbours_and_refused_as_a_query(cli, root, lake, encoder_path):
    store = root / "analysis" / "latent_embeddings" / "legacy" / DEFAULT_MODEL_NAME / f"morph_latents_{STORE_EXP}.csv"
    frame = pl.read_csv(store, infer_schema=False)
    zero_snip = frame["snip_id"][0]
    z_mu = [c for c in frame.columns if c.startswith("z_mu_")]
    frame.with_columns(
        [pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("0.0")).otherwise(pl.col(c)).alias(c) for c in z_mu]
    ).write_csv(store)
    ingest = cli("ingest", "--root", root, "--lake", lake)
    assert ingest.exit_code == 0 and "1 row(s) with an all-zero z_mu, kept" in ingest.stderr
    record = json.loads(sorted(lake.glob("runs/*-ingest-*.json"))[-1].read_text())
    assert record["zero_norm"] == {STORE_EXP: 1}
    assert cli("embed", "--model", encoder_path, "--lake", lake).exit_code == 0
    assert "1 with an all-zero z_mu" in cli("status", "--lake", lake).output

    other = frame["snip_id"][1]
    result = cli("neighbours", other, "-k", str(SNIPS), "--lake", lake)
    assert result.exit_code == 0, result.output
    assert zero_snip not in result.output and "nan" not in result.output.lower()
    assert "note: 1 embedding(s)" in result.stderr and "all-zero z_mu were left out" in result.stderr
    refused = cli("neighbours", zero_snip, "--lake", lake)
    assert refused.exit_code == 1 and "has an all-zero z_mu" in refused.stderr and "Traceback" not in refused.output

    assert cli("build", "--lake", lake).exit_code == 0
    readme = README_NEIGHBOURS_SQL.format(snip=other)
    with duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True) as con:
        ranked = con.execute(readme).fetchall()
    assert ranked and zero_snip not in [r[0] for r in ranked]


def readme_neighbours_sql() -> str:
    """The README's neighbour query (the block under "Querying the lake"), with the snip as a placeholder."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = text.split("-- nearest neighbours of one snip")[1].split("```")[0]
    return "select" + block.split("select", 1)[1].replace("'20240626_A01_e01_t0000'", "'{snip}'")


README_NEIGHBOURS_SQL = readme_neighbours_sql()


# 6. The smaller ones.


def test_a_symlink_loop_among_the_snips_is_an_unreadable_snip(cli, root, lake):
    loop = DataRoot.at(root).snip_dir(STORE_EXP) / f"{STORE_EXP}_H12_e09_t0000.jpg"
    loop.symlink_to(loop.name)
    strict = cli("ingest", "--root", root, "--lake", lake)
    assert strict.exit_code == 1 and "loops back on itself" in strict.stderr and "Traceback" not in strict.output
    partial = cli("ingest", "--root", root, "--lake", lake, "--allow-partial")
    assert partial.exit_code == 2, partial.output


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("latent_dim", "abc", "morphlake.latent_dim = 'abc' is not a width from 1 to 65536"),
        ("latent_dim", "0", "is not a width from 1 to 65536"),
        ("zn_frac", "nan", "morphlake.zn_frac = 'nan' is not a share from 0 to 1"),
        ("zn_frac", "5", "morphlake.zn_frac = '5' is not a share from 0 to 1"),
        ("zn_frac", "x", "morphlake.zn_frac = 'x' is not a share from 0 to 1"),
        ("nuisance_dims", "500", "is not a count from 0 to latent_dim (100)"),
        ("weights", "mine", "is not trained or demo"),
        ("precision", "int4", "is not fp32 or fp16 or int8"),
    ],
)
def test_encoder_metadata_is_checked_at_load(key, value, message, cli, ingested, encoder_path, tmp_path):
    model = onnx.load(str(encoder_path))
    props = {p.key: p for p in model.metadata_props}
    if f"morphlake.{key}" in props:
        props[f"morphlake.{key}"].value = value
    else:
        model.metadata_props.add(key=f"morphlake.{key}", value=value)
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    result = cli("embed", "--model", path, "--lake", ingested)
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_a_killed_run_shows_as_died(cli, root, ingested):
    crashed = cli.subprocess("ingest", "--root", root, "--lake", ingested, env={"MORPHLAKE_CRASH_AT": "before-publish"})
    assert crashed.returncode == 137
    health = json.loads(cli("status", "--json", "--lake", ingested).output)
    assert health["recent_runs"][-1]["outcome"] == "died"
    assert health["last_failed_run"]["command"] == "ingest" and "Died" not in health["last_failed_run"]["error"]
    assert "ended before the run finished: killed or crashed" in health["last_failed_run"]["error"]
    text = cli("status", "--lake", ingested).output
    assert "died" in text and "killed or crashed" in text
    assert cli("ingest", "--root", root, "--lake", ingested).exit_code == 0
    assert json.loads(cli("status", "--json", "--lake", ingested).output)["last_failed_run"] is None


def test_a_run_in_progress_is_running_not_died(cli, ingested):
    from morphlake.lake.lock import LakeLock
    from morphlake.lake.runs import RunRecord

    record = RunRecord("embed", {})
    with LakeLock(Lake.at(ingested).lock_file, "embed", record.run_id):
        record.start(Lake.at(ingested).runs_dir)
        health = json.loads(cli("status", "--json", "--lake", ingested).output)
    assert health["recent_runs"][-1] == {**health["recent_runs"][-1], "run_id": record.run_id, "outcome": "running"}
    assert health["last_failed_run"] is None
    after = json.loads(cli("status", "--json", "--lake", ingested).output)  # its process let go, unfinished
    assert after["recent_runs"][-1]["outcome"] == "died"


def test_a_damaged_lake_file_is_a_message_not_a_traceback(cli, built_lake):
    (built_lake / "raw" / "df02" / f"experiment_date={STORE_EXP}" / "part-00000.parquet").write_bytes(b"garbage")
    text = cli("status", "--lake", built_lake)
    assert text.exit_code == 1 and "cannot read the lake" in text.stderr and "Traceback" not in text.output
    as_json = cli("status", "--json", "--lake", built_lake)
    assert as_json.exit_code == 1 and "too small to be a Parquet file" in json.loads(as_json.stdout)["error"]


def test_status_json_is_json_even_when_it_fails(cli, tmp_path, built):
    missing = cli("status", "--json", "--lake", tmp_path / "none")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout) == {
        "lake": str(tmp_path / "none"),
        "error": f"no lake at {tmp_path / 'none'}",
        "hint": "run `morphlake ingest` or `morphlake demo` first",
    }
    unknown = cli("status", "--json", "--model-name", "nope", "--lake", built)
    assert unknown.exit_code == 1 and "has no embeddings of model nope" in json.loads(unknown.stdout)["error"]


@pytest.mark.parametrize(
    "args",
    [("embed", "--bogus"), ("nope",), ("--bogus",), ("embed", "--device", "gpu"), ("sql",), ("ingest",)],
    ids=["unknown-option", "unknown-command", "unknown-global-option", "bad-choice", "missing-argument", "missing"],
)
def test_usage_errors_exit_64_never_2(args, cli):
    result = cli(*args)
    assert result.exit_code == 64, result.output
