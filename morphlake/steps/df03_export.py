"""Write a build's df03 Parquet export: changed experiments from the warehouse's int_df03, the rest linked."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from morphlake.common.progress import step_progress
from morphlake.common.sqltext import glob_literal, literal
from morphlake.errors import MorphlakeError
from morphlake.lake.builds import DF03, SCHEMA
from morphlake.lake.faults import crash_point
from morphlake.lake.layout import PART_FILE

# Every df03 column but the z_mu vector (which only repeats the z_mu_NN columns: ~45% larger files and ~40% more
# time to write; the warehouse's df03 view adds it back), one file per experiment. Beside the export, in the build's
# folder, df03_schema.parquet (no rows) gives df03's columns even when it is empty: inside the export it would trip
# readers (DuckDB's `**/*.parquet` with hive partitioning, Polars on the folder), so the export holds partitions only.

SOURCE = "int_df03"  # the dbt model the export copies
CHUNK_ROWS = 100_000  # rows per partitioned write: bounds memory, and each write scans only its experiments


def export_groups(counts: list[tuple[str, int]], max_rows: int = CHUNK_ROWS) -> list[list[str]]:
    """Experiments in runs of at most max_rows rows (an experiment larger than that is a run of its own)."""
    groups: list[list[str]]
    groups, rows = [[]], 0
    for exp, n in counts:
        if groups[-1] and rows + n > max_rows:
            groups.append([])
            rows = 0
        groups[-1].append(exp)
        rows += n
    return [g for g in groups if g]


def one_file(folder: Path, target: Path) -> None:
    """The Parquet file(s) DuckDB wrote for one partition, as the single file `target`."""
    files = sorted(folder.glob("*.parquet"))
    if len(files) == 1:
        os.replace(files[0], target)
        return
    # DuckDB may write one file per thread into a partition; join them, streaming
    with pq.ParquetWriter(target, pq.read_schema(files[0]), compression="snappy") as writer:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=65536):
                writer.write_batch(batch)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (an unchanged partition costs no space or time), or a copy where links are not supported."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        shutil.copy2(source, target)


def write_schema_file(con: duckdb.DuckDBPyConnection, path: Path, *, model_name: str) -> None:
    """df03's columns without rows, and in its metadata the model and z naming the export holds (the df03 view
    reads the export only when they are the ones its vars ask for)."""
    names = [row[0] for row in con.execute(f"select column_name from (describe {SOURCE})").fetchall()]
    # (with no nuisance dims, floor(D * zn_frac) = 0, bio/nuisance names are all z_mu_b_NN)
    z_schema = "bio_nuisance" if any(name.startswith(("z_mu_n_", "z_mu_b_")) for name in names) else "flat"
    con.execute(
        f"COPY (select * from {SOURCE} limit 0) TO {literal(path)} "
        "(FORMAT parquet, KV_METADATA {model_name: $model, z_schema: $naming})",
        {"model": model_name, "naming": z_schema},
    )


def partition_counts(con: duckdb.DuckDBPyConnection, experiments: list[str]) -> dict[str, int]:
    """Rows of int_df03 per experiment, for these experiments (those with none are absent)."""
    if not experiments:
        return {}
    rows = con.execute(
        f"select experiment_date, count(*) from {SOURCE} where experiment_date in (select unnest($exps)) group by 1",
        {"exps": experiments},
    ).fetchall()
    return dict(rows)


def write_partitions(con: duckdb.DuckDBPyConnection, folder: Path, counts: dict[str, int]) -> None:
    """One partitioned COPY per run of experiments, so each scan of the lake reads only those experiments' files
    and memory stays bounded by the run; then one file per experiment."""
    con.execute("SET preserve_insertion_order = false")  # lets DuckDB stream the partitioned write
    # every COPY binds int_df03, which opens every lake file's footer (~200 columns each): read them once
    con.execute("SET parquet_metadata_cache = true")
    with step_progress("build: df03 export", sum(counts.values()), unit="rows") as progress:
        for i, group in enumerate(export_groups(sorted(counts.items()))):
            _write_group(con, folder / f".run-{i:04d}", folder, group)
            progress.advance(sum(counts[exp] for exp in group))


def _write_group(con: duckdb.DuckDBPyConnection, out: Path, folder: Path, group: list[str]) -> None:
    """One partitioned COPY of these experiments into `out`, then each partition as one file in `folder`."""
    con.execute(
        f"COPY (select * from {SOURCE} where experiment_date in (select unnest($exps))) TO {literal(out)} "
        "(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (experiment_date), WRITE_PARTITION_COLUMNS true)",
        {"exps": group},
    )
    for exp in group:
        target = folder / f"experiment_date={exp}" / PART_FILE
        target.parent.mkdir()
        one_file(out / f"experiment_date={exp}", target)
    shutil.rmtree(out)
    crash_point("export-run")


def export_df03(
    con: duckdb.DuckDBPyConnection,
    build: Path,
    *,
    model_name: str,
    rebuild: list[str],
    keep: dict[str, Path] | None = None,
) -> dict[str, int]:
    """Fill a new build's df03 folder (and its schema file beside it): `rebuild` experiments written from int_df03,
    `keep` ones linked from the previous build's files. Returns rows per written experiment, checked against the
    files."""
    folder = build / DF03
    write_schema_file(con, build / SCHEMA, model_name=model_name)
    counts = partition_counts(con, rebuild)
    write_partitions(con, folder, counts)
    keep = keep or {}
    for exp, source in keep.items():
        target = folder / f"experiment_date={exp}" / PART_FILE
        target.parent.mkdir()
        link_or_copy(source, target)
    for exp, rows in counts.items():
        written = pq.ParquetFile(folder / f"experiment_date={exp}" / PART_FILE).metadata.num_rows
        if written != rows:
            raise MorphlakeError(
                f"df03 export of experiment {exp}: wrote {written} rows, int_df03 has {rows}",
                "this is a bug in morphlake; nothing was published",
            )
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
