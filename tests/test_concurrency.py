"""Concurrency: readers keep working while a writer runs; a second writer is refused (test_ingest_cli)."""

import json
import subprocess
import sys
import textwrap
import time

import polars as pl
from conftest import TINY

from morphlake.lake.data_root import DF02_RELPATH

SNIPS = TINY.embryos * TINY.timepoints * TINY.experiments  # rows of the tiny root's df02, and so of df03
READS_DURING_WRITE = 10  # the reader must finish more reads than this while the writer runs (measured: hundreds)

READER = textwrap.dedent("""
    import sys, time
    import os
    kind, target, stop = sys.argv[1], sys.argv[2], sys.argv[3]
    counts, times, errors, end = [], [], [], time.time() + 120
    if kind == "duckdb":
        import duckdb
        con = duckdb.connect(target, read_only=True)   # opened before the writer starts, kept open
        print("ready", flush=True)
        while time.time() < end and not os.path.exists(stop):
            try:
                counts.append(con.execute("select count(*) from df03").fetchall()[0][0])
                times.append(time.time())
            except Exception as exc:
                errors.append(repr(exc))
    else:
        import polars as pl
        print("ready", flush=True)
        while time.time() < end and not os.path.exists(stop):
            try:
                counts.append(pl.scan_parquet(target, hive_partitioning=True).select(pl.len()).collect().item())
                times.append(time.time())
            except Exception as exc:
                errors.append(repr(exc))
    import json
    print(json.dumps({"times": times, "counts": sorted(set(counts)), "errors": errors[:3]}), flush=True)
""")


def start_reader(kind, target, stop):
    """Reads in a loop, in another process, until the file `stop` appears."""
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, kind, str(target), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def finish(proc, stop, started: float, ended: float) -> dict:
    """The reader's summary, with `during`: how many of its reads finished while the writer ran."""
    stop.write_text("")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    seen = json.loads(out)
    seen["during"] = sum(started <= t <= ended for t in seen.pop("times"))
    return seen


def test_duckdb_reader_keeps_working_during_a_build(cli, embedded_lake):
    assert cli("build", "--lake", embedded_lake).exit_code == 0
    stop = embedded_lake.parent / "stop"
    reader = start_reader("duckdb", embedded_lake / "warehouse.duckdb", stop)
    started = time.time()
    result = cli("build", "--lake", embedded_lake, "--z-schema", "flat")
    ended = time.time()
    assert result.exit_code == 0, result.output  # the build does not need the reader to let go
    seen = finish(reader, stop, started, ended)
    assert seen["during"] > READS_DURING_WRITE and seen["counts"] == [SNIPS] and seen["errors"] == []


def test_polars_reader_keeps_working_during_an_ingest(cli, root, ingested):
    frame = pl.read_csv(root / DF02_RELPATH, infer_schema=False)
    assert frame.height == SNIPS
    frame.with_columns(pl.lit("E2").alias("medium")).write_csv(root / DF02_RELPATH)
    stop = ingested.parent / "stop"
    reader = start_reader("polars", ingested / "raw" / "df02", stop)
    started = time.time()
    assert cli("ingest", "--root", root, "--lake", ingested).exit_code == 0
    ended = time.time()
    seen = finish(reader, stop, started, ended)
    assert seen["during"] > READS_DURING_WRITE and seen["counts"] == [SNIPS] and seen["errors"] == []
