"""The df03 export's runs and writer threads, dbt's parse, and the run record's per-phase memory, on a tiny lake."""

import json
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

import morphlake.steps.build.df03_export as df03_export
from morphlake.common.peak_memory import PhasePeaks
from morphlake.steps.build.step import find_project


def exported(lake: Path) -> dict[str, bytes]:
    """Each experiment's export file, by experiment: its bytes."""
    return {p.parent.name: p.read_bytes() for p in sorted((lake / "exports" / "df03").glob("*/*.parquet"))}


def last_record(lake: Path) -> dict:
    return json.loads(sorted(lake.glob("runs/*-build-*.json"))[-1].read_text())


def test_an_export_in_many_runs_writes_the_same_files_as_in_one(cli, embedded_lake, tmp_path, monkeypatch):
    """Runs bound memory, not the result: one experiment per run gives the same bytes (each file sorted by snip_id,
    so DuckDB's threads cannot reorder it)."""
    other = tmp_path / "other"
    shutil.copytree(embedded_lake, other)
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    monkeypatch.setattr(df03_export, "RUN_VALUES", 1)  # every experiment a run of its own
    assert cli("build", "--lake", other).exit_code == 0
    one_run, many_runs = exported(embedded_lake), exported(other)
    assert len(one_run) == 3 and one_run == many_runs
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (other / "exports" / "df03").glob("*/*.parquet"))
    assert last_record(other)["counts"]["df03_rows"] == rows == 18


def test_a_failed_write_fails_the_build_and_publishes_nothing(cli, embedded_lake, monkeypatch):
    write = df03_export.write_part

    def disk_full(table, path, **options):
        if "20250305" in str(path):
            raise OSError(28, "No space left on device")
        write(table, path, **options)

    monkeypatch.setattr(df03_export, "write_part", disk_full)
    result = cli("build", "--lake", embedded_lake)
    assert result.exit_code != 0 and "No space left on device" in result.output + result.stderr
    assert not (embedded_lake / "warehouse.duckdb").exists() and not (embedded_lake / "exports" / "df03").exists()
    assert not [p for p in (embedded_lake / "builds").iterdir() if p.name != ".lock"]
    assert last_record(embedded_lake)["outcome"] == "failed"


def test_a_project_dbt_cannot_parse_fails_with_dbts_reason(cli, embedded_lake, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(find_project(), project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "df03.yml").write_text("version: 2\nmodels:\n  - name: [df03\n")
    result = cli("build", "--lake", embedded_lake, "--project-dir", project)
    assert result.exit_code == 1
    assert f"dbt could not parse the project {project}" in result.stderr
    record = last_record(embedded_lake)
    assert record["dbt"]["exception"] and record["dbt"]["exception"] in result.stderr  # dbt's own words, said
    assert "dbt_build" not in record["timings_s"] and not (embedded_lake / "warehouse.duckdb").exists()


def test_z_sigma_of_a_replaced_embedding_is_not_paired_with_the_old_means(cli, embedded_lake):
    """df03 is the last build's; df03_z_sigma reads the lake but only the embedding df03 holds (same run)."""
    assert cli("build", "--lake", embedded_lake, "--z-schema", "flat").exit_code == 0
    part = next(embedded_lake.glob("embeddings/*/experiment_date=20240626/*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.set_column(table.schema.get_field_index("run_id"), "run_id", [["later"] * len(table)]), part)
    with duckdb.connect(str(embedded_lake / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select d.experiment_date, count(*) from df03 d join df03_z_sigma s "
            "using (snip_id, experiment_date, embedding_run_id) group by 1 order by 1"
        ).fetchall()
    assert [exp for exp, _ in rows] == ["20250305_24hpf_lmx1b", "20250612_30hpf_ctrl_atf6"]


def test_phase_peaks_see_an_allocation_inside_a_phase_and_stop_sampling_after():
    peaks = PhasePeaks(interval=0.005)
    peaks.enter("outer")
    peaks.enter("big")
    held = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    time.sleep(0.05)
    del held
    peaks.leave("big")
    peaks.enter("small")
    peaks.leave("small")
    peaks.leave("outer")
    assert peaks.peaks["big"] >= peaks.peaks["small"] + 50
    assert peaks.peaks["outer"] >= peaks.peaks["big"]  # an enclosing phase holds its inner phases' peaks
    deadline = time.time() + 2
    while peaks._thread is not None and time.time() < deadline:
        time.sleep(0.01)
    assert peaks._thread is None  # no phase open: the sampler ended


@pytest.mark.parametrize("sizes", [[("a", 5), ("b", 5), ("c", 1)], [("a", 20), ("b", 1)]])
def test_runs_hold_at_most_max_rows_unless_one_experiment_is_larger(sizes):
    groups = df03_export.export_groups(sizes, max_rows=10)
    assert [exp for group in groups for exp in group] == [exp for exp, _ in sizes]
    size = dict(sizes)
    assert all(sum(size[e] for e in g) <= 10 or len(g) == 1 for g in groups)


def test_a_wider_df03_has_shorter_runs():
    """Runs are bounded in values, not rows: a model of 4x the width gets runs of ~1/4 the rows."""
    narrow, wide = df03_export.run_rows(126), df03_export.run_rows(426)
    assert narrow * 126 <= df03_export.RUN_VALUES and wide * 426 <= df03_export.RUN_VALUES
    assert 3 < narrow / wide < 4 and df03_export.run_rows(df03_export.RUN_VALUES * 2) == 1
