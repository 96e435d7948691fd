"""Write a build's df03 Parquet export: changed experiments from the warehouse's int_df03, the rest linked."""

from __future__ import annotations

import errno
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from morphlake.common.progress import step_progress
from morphlake.common.sqltext import glob_literal, literal
from morphlake.common.zcolumns import named_bio_nuisance
from morphlake.errors import MorphlakeError
from morphlake.lake.builds import DF03, SCHEMA
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import PART_FILE, write_part

# df03's columns (the z_mu vector left out: it only repeats the z_mu_NN columns, and the warehouse's df03 view adds it
# back), one file per experiment. Beside the export, in the build's folder, df03_schema.parquet (no rows) gives df03's
# columns even when it is empty: inside the export it would trip readers (DuckDB's `**/*.parquet` with hive
# partitioning, Polars on the folder), so the export holds partitions only.
#
# DuckDB runs the join (int_df03) into Arrow, one run of experiments at a time; pyarrow writes the run's experiments,
# one file each, on writer threads. On 1M rows x 126 columns pyarrow's writer was 4.8x as fast as DuckDB's partitioned
# COPY; from a lake, where DuckDB's join is most of the time, this export was ~5% faster than that COPY for ~130 MiB
# more, and its files are sorted (benchmarks/README.md, "df03 at every size"). Memory is bounded by one run, whatever
# the lake's size.

SOURCE = "int_df03"  # the dbt model the export copies
# Values (rows x columns) per run: bounds memory whatever the lake's size and the model's width, and each query scans
# only its experiments' files. 6M is ~48k rows of df03 at 100 dims (126 columns): a 1M-snip first build peaked at
# ~505-525 MiB with it and ~600 MiB with 100k-row runs, for ~0.4 s more of the export (each run's query has a fixed
# cost: opening every lake file's cached footer for the projected columns).
RUN_VALUES = 6_000_000
BATCH_ROWS = 65_536
COMPRESSION = "snappy"  # the export is read often and whole: snappy decodes fastest, and floats barely compress
Z_SIGMA_NOTE = (
    "not in df03: the log-variances are in the warehouse's df03_z_sigma (join on snip_id, experiment_date, "
    "embedding_run_id) and in the lake's embeddings table (z_sigma_NN)"
)


def export_groups(counts: list[tuple[str, int]], *, max_rows: int) -> list[list[str]]:
    """Experiments in runs of at most max_rows rows (an experiment larger than that is a run of its own)."""
    groups: list[list[str]] = [[]]
    rows = 0
    for exp, n in counts:
        if groups[-1] and rows + n > max_rows:
            groups.append([])
            rows = 0
        groups[-1].append(exp)
        rows += n
    return [g for g in groups if g]


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (an unchanged partition costs no space or time), or a copy where links are not supported."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copy2(source, target)


def fetch_run(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> pa.Table:
    """int_df03's rows of these experiments as Arrow, streamed out of DuckDB (no result held on its side)."""
    # the experiments as literals, not a parameter list: a constant filter prunes each file by its statistics while
    # planning (~10 ms less per run at 100 files a table)
    wanted = ", ".join(literal(exp) for exp in experiments)
    reader = con.sql(f"select * from {SOURCE} where experiment_date in ({wanted})").to_arrow_reader(
        batch_size=BATCH_ROWS
    )
    return reader.read_all()


def write_schema_file(schema: pa.Schema, path: Path, *, model_name: str) -> None:
    """df03's columns without rows, and in its metadata the model and z naming the export holds (the df03 view
    reads the export only when they are the ones its vars ask for), and where z_sigma went."""
    # (with no nuisance dims, floor(D * zn_frac) = 0, bio/nuisance names are all z_mu_b_NN)
    z_schema = "bio_nuisance" if named_bio_nuisance(schema.names) else "flat"
    metadata = {"model_name": model_name, "z_schema": z_schema, "z_sigma": Z_SIGMA_NOTE}
    # from_batches, not schema.empty_table(): that imports pandas (~0.2 s of every build)
    empty = pa.Table.from_batches([], schema=schema)
    pq.write_table(empty.replace_schema_metadata(metadata), path, compression=COMPRESSION)


def experiment_rows(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> list[tuple[str, int]]:
    """df02's rows per experiment, for these experiments, in order: a bound on each one's df03 rows that costs no
    join (runs are sized by it)."""
    if not experiments:
        return []
    return con.execute(
        "select experiment_date, count(*) from stg_df02 where experiment_date in (select unnest($exps)) "
        "group by 1 order by 1",
        {"exps": experiments},
    ).fetchall()


def write_run(run: pa.Table, *, folder: Path, pool: ThreadPoolExecutor) -> dict[str, int]:
    """Each experiment of a fetched run as its partition's one file, in snip order (the same lake gives the same
    files, whatever order DuckDB's threads joined in), on the writer threads. Returns the rows written per
    experiment, each read back from its file's footer and all adding up to the run's rows."""
    order = pc.sort_indices(run, sort_keys=[("experiment_date", "ascending"), ("snip_id", "ascending")])
    counts = pc.value_counts(run["experiment_date"])  # each experiment's rows are one stretch of `order`
    sizes = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
    jobs, start = {}, 0
    for exp in sorted(sizes):
        rows = order.slice(start, sizes[exp])
        start += sizes[exp]
        jobs[exp] = pool.submit(_write_partition, run, rows=rows, target=folder / f"experiment_date={exp}" / PART_FILE)
    try:
        written = {exp: job.result() for exp, job in jobs.items()}
    except BaseException:
        for job in jobs.values():  # a failed write (a full disk) ends the export now, not after the queued ones
            job.cancel()
        raise
    if sum(written.values()) != run.num_rows or written != sizes:
        raise MorphlakeError(
            f"df03 export: wrote {sum(written.values())} rows of a run of {run.num_rows} ({written} for {sizes})",
            "this is a bug in morphlake; nothing was published",
        )
    return written


def _write_partition(run: pa.Table, *, rows: pa.Array, target: Path) -> int:
    """These rows of a run as one file (cut out on the writer thread: only partitions being written are copies);
    returns the rows its footer holds."""
    try:
        target.parent.mkdir()
        write_part(run.take(rows), target, compression=COMPRESSION)
        return pq.ParquetFile(target).metadata.num_rows
    except OSError as error:
        raise MorphlakeError(
            f"df03 export: could not write {target}: {error}",
            "free disk space (or fix the folder's permissions) and re-run morphlake build; nothing was published",
        ) from None


def _usable_cores() -> int:
    """The cores this process may run on (a job's CPU set, not the whole machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_rows(columns: int) -> int:
    """The most rows a run of `columns` columns holds (RUN_VALUES), at least one."""
    return max(1, RUN_VALUES // max(1, columns))


def write_partitions(
    con: duckdb.DuckDBPyConnection, folder: Path, *, experiments: list[str], columns: int
) -> dict[str, int]:
    """Every run of experiments fetched from int_df03 (`columns` wide) and written; returns the rows written per
    experiment (those with none have no file)."""
    # every query binds int_df03, which opens every lake file's footer (~200 columns each): read them once
    con.execute("SET parquet_metadata_cache = true")
    bounds = experiment_rows(con, experiments)
    df02_rows = dict(bounds)
    written: dict[str, int] = {}
    with (
        ThreadPoolExecutor(max_workers=_usable_cores(), thread_name_prefix="df03-export") as pool,
        step_progress("build: df03 export", sum(n for _, n in bounds), unit="df02 rows") as progress,
    ):
        for group in export_groups(bounds, max_rows=run_rows(columns)):
            # one run in memory at a time: overlapping the next fetch with these writes gained little on 2 cores
            # for a second run's memory
            written.update(write_run(fetch_run(con, group), folder=folder, pool=pool))
            crash_point("export-run")
            progress.advance(sum(df02_rows[exp] for exp in group))
    return written


def export_df03(
    con: duckdb.DuckDBPyConnection,
    build: Path,
    *,
    model_name: str,
    rebuild: list[str],
    keep: dict[str, Path] | None = None,
) -> dict[str, int]:
    """Fill a new build's df03 folder (and its schema file beside it): `rebuild` experiments written from int_df03,
    `keep` ones linked from the previous build's files. Returns rows per written experiment, as their files hold
    them."""
    folder = build / DF03
    folder.mkdir(parents=True, exist_ok=True)
    schema = con.sql(f"select * from {SOURCE} limit 0").to_arrow_table().schema
    write_schema_file(schema, build / SCHEMA, model_name=model_name)
    counts = write_partitions(con, folder, experiments=rebuild, columns=len(schema))
    for exp, source in (keep or {}).items():
        target = folder / f"experiment_date={exp}" / PART_FILE
        target.parent.mkdir()
        link_or_copy(source, target)
    return counts


def view_sql(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute(
        "select sql from duckdb_views() where database_name = current_database() and schema_name = 'main' "
        "and view_name = 'df03'"
    ).fetchone()
    return row[0] if row else None


def view_reads(con: duckdb.DuckDBPyConnection, build: Path) -> bool:
    """Whether the warehouse's df03 view reads this build's export and schema file (a plain `dbt build` re-creates it
    over the published build, builds/current)."""
    sql = view_sql(con)
    return sql is not None and sql.count(_glob(build)) == 1


def _glob(build: Path) -> str:
    """What the df03 view reads: the build's Parquet files, its export and schema file (dbt_project/macros/lake.sql
    writes it the same way)."""
    return glob_literal(build, "**/*.parquet")


def point_df03_at(con: duckdb.DuckDBPyConnection, old: Path, new: Path) -> None:
    """Re-create the warehouse's df03 view (as dbt compiled it) over a new build's export."""
    sql = view_sql(con)
    if sql is None or sql.count(_glob(old)) != 1:  # view_reads() was checked when planning: a bug if so
        raise MorphlakeError(
            "the warehouse's df03 view does not read the last build's export", "run morphlake build --full"
        )
    con.execute(sql.replace(_glob(old), _glob(new)).replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
