"""df03 as Parquet for other tools: <lake>/exports/df03/experiment_date=<exp>/part-00000.parquet.

Every df03 column except the z_mu vector, which readers rebuild from the z_mu_NN columns when they need it.

Grain of this model's own table: one row per exported partition (experiment_date, rows, path).
Each partition is written to <lake>/.staging first and moved into place with an atomic rename;
partitions of experiments no longer in df03 are removed; an empty df03 writes no file at all.
"""

import fcntl
import json
import os
import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

# df03's z_mu FLOAT[N] is for vector SQL in the warehouse; in Parquet it would only repeat the z_mu_NN
# columns as a list, adding ~45% to the files and ~40% to the export's time (benchmarks/df03.py).
VECTOR_COLUMN = "z_mu"
CHUNK_ROWS = 250_000  # rows per partitioned write: bounds memory, and each write scans only its experiments
SUMMARY = pa.schema([("experiment_date", pa.string()), ("rows", pa.int64()), ("path", pa.string())])


def lake_root(session) -> str:
    """Set by `morphlake build` (which builds into a staged warehouse), else the warehouse's folder."""
    if os.environ.get("MORPHLAKE_LAKE_ROOT"):
        return os.environ["MORPHLAKE_LAKE_ROOT"]
    rows = session.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()
    return os.path.dirname(rows[0][0])


def hold_lake_lock(lake: str):
    """morphlake build already holds the lock (and says so); a bare `dbt build` takes it here."""
    if os.environ.get("MORPHLAKE_LOCK_HELD"):
        return None
    fd = os.open(os.path.join(lake, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace")
        os.close(fd)
        raise RuntimeError(
            f"the lake {lake} is being written by another morphlake process ({holder}); wait for it to finish"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "command": "dbt build (df03_export)"}).encode())
    return fd


def crash_if_asked(point: str) -> None:
    """Fault injection for morphlake's crash tests (MORPHLAKE_CRASH_AT=export); a no-op otherwise."""
    if os.environ.get("MORPHLAKE_CRASH_AT") == point:
        os._exit(137)


def export_groups(counts: list[tuple[str, int]], max_rows: int = CHUNK_ROWS) -> list[list[str]]:
    """Experiments in runs of at most max_rows rows (an experiment larger than that is a run of its own)."""
    groups, rows = [[]], 0
    for exp, n in counts:
        if groups[-1] and rows + n > max_rows:
            groups.append([])
            rows = 0
        groups[-1].append(exp)
        rows += n
    return [g for g in groups if g]


def one_file(folder: str, target: str) -> None:
    """The Parquet file(s) DuckDB wrote for one partition, as the single file `target`, fsynced."""
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".parquet"))
    if len(files) == 1:
        os.replace(files[0], target)
    else:  # DuckDB may write one file per thread into a partition; join them, streaming
        schema = pq.read_schema(files[0])
        with pq.ParquetWriter(target, schema, compression="zstd") as writer:
            for path in files:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
                    writer.write_batch(batch)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())


def stage_partitions(df03, session, staging: str, counts: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Write df03's partitions under staging: one partitioned COPY per run of experiments, so each
    scan of the lake reads only those experiments' files and memory stays bounded by the run."""
    staged, rows = [], dict(counts)
    session.execute("SET preserve_insertion_order = false")  # lets DuckDB stream the partitioned write
    try:
        for i, group in enumerate(export_groups(counts)):
            out = os.path.join(staging, f"run-{i:04d}")
            part = df03.filter(
                duckdb.ColumnExpression("experiment_date").isin(*[duckdb.ConstantExpression(exp) for exp in group])
            ).project(f"* exclude ({VECTOR_COLUMN})")
            part.write_parquet(
                out, compression="snappy", partition_by=["experiment_date"], write_partition_columns=True
            )
            for exp in group:
                target = os.path.join(staging, f"experiment_date={exp}.parquet")
                one_file(os.path.join(out, f"experiment_date={exp}"), target)
                staged.append((exp, target, rows[exp]))
            shutil.rmtree(out)
    finally:
        session.execute("RESET preserve_insertion_order")
    return staged


def export(df03, session) -> pa.Table:
    """Write every experiment's partition, then publish them; returns one row per partition."""
    lake = lake_root(session)
    export_dir = os.path.join(lake, "exports", "df03")
    staging = os.path.join(lake, ".staging", f"dbt-df03-export-{os.getpid()}")
    lock = hold_lake_lock(lake)
    try:
        counts = sorted(df03.aggregate("experiment_date, count(*)").fetchall())
        for exp, _ in counts:
            # experiment names were checked as safe path segments at ingest; check again before using one.
            if not exp or "/" in exp or exp.startswith(".") or "=" in exp:
                raise RuntimeError(f"experiment_date {exp!r} is not safe as a partition folder name")
        os.makedirs(staging, exist_ok=True)
        staged = stage_partitions(df03, session, staging, counts)
        experiments = [exp for exp, _ in counts]
        summary = []
        for exp, tmp, rows in staged:
            target = os.path.join(export_dir, f"experiment_date={exp}", "part-00000.parquet")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp, target)
            crash_if_asked("export")
            summary.append({"experiment_date": exp, "rows": rows, "path": target})
        keep = {f"experiment_date={exp}" for exp in experiments}
        for name in sorted(os.listdir(export_dir)) if os.path.isdir(export_dir) else []:
            if name not in keep:
                shutil.rmtree(os.path.join(export_dir, name))
        return pa.Table.from_pylist(summary, schema=SUMMARY)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(staging))
        except OSError:
            pass
        if lock is not None:
            os.ftruncate(lock, 0)
            os.close(lock)


def model(dbt, session):
    dbt.config(materialized="table")
    summary = export(dbt.ref("df03"), session)
    return summary
