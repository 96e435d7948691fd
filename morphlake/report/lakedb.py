"""A read-only DuckDB view of the raw lake (df02, train, snips, embeddings Parquet) for status, report, sql."""

from __future__ import annotations

import duckdb

from morphlake.common.sqltext import literal, path_glob
from morphlake.common.zcolumns import flat_z_mu
from morphlake.errors import MorphlakeError
from morphlake.lake.layout import PART_FILE, Lake

RAW_TABLES = ("df02", "train", "snips")


def parquet(files: str) -> str:
    """read_parquet over a glob of the lake's own files (made by path_glob, so the lake's own path is taken
    literally): every column (experiment_date too) is in the files, so the Hive keys are not added again, and
    partitions written before a column existed read it as null."""
    return f"read_parquet({literal(files)}, hive_partitioning = false, union_by_name = true)"


def model_names(lake: Lake) -> list[str]:
    return lake.partition_values("embeddings", "model_name")


def embeddings_glob(lake: Lake, model_name: str) -> str:
    return path_glob(lake.partition_dir("embeddings", model_name=model_name), f"experiment_date=*/{PART_FILE}")


def partition_files(lake: Lake, table: str, model_name: str | None = None) -> list[str]:
    """A table's partition files (one model's, for embeddings), listed: for readers whose globs have other rules
    than DuckDB's (Polars would read a lake under `br[1]` wrongly)."""
    folder = lake.partition_dir(table, model_name=model_name) if model_name else lake.table_dir(table)
    return [str(p) for p in sorted(folder.glob(f"*/{PART_FILE}"))]


def has_files(lake: Lake, table: str, model_name: str | None = None) -> bool:
    base = lake.partition_dir("embeddings", model_name=model_name) if model_name else lake.table_dir(table)
    return base.is_dir() and any(base.glob(f"*/{PART_FILE}"))


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per raw table that has files (df02, train, snips) and `embeddings`
    (every model; `model_embeddings(con, lake, M)` makes one model's). Nothing here can write the lake."""
    if not lake.root.is_dir():
        raise MorphlakeError(f"no lake at {lake.root}", "run `morphlake ingest` (or `morphlake demo`) first")
    con = duckdb.connect()
    for table in RAW_TABLES:
        if has_files(lake, table):
            con.execute(
                f"create view {table} as select * from {parquet(path_glob(lake.table_dir(table), '*/' + PART_FILE))}"
            )
    if model_names(lake):
        glob = path_glob(lake.table_dir("embeddings"), f"model_name=*/experiment_date=*/{PART_FILE}")
        con.execute(f"create view embeddings as select * from {parquet(glob)}")
    return con


def views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}


def model_view(con: duckdb.DuckDBPyConnection, lake: Lake, model_name: str, *, name: str = "model_embeddings") -> bool:
    """Create view `name` over one model's embeddings partitions (read alone: fast, one width); False when the
    model has none."""
    if not has_files(lake, "embeddings", model_name):
        return False
    con.execute(f"create or replace view {name} as select * from {parquet(embeddings_glob(lake, model_name))}")
    return True


def require_model(lake: Lake, model_name: str) -> None:
    if not has_files(lake, "embeddings", model_name):
        known = model_names(lake)
        raise MorphlakeError(
            f"the lake {lake.root} has no embeddings of model {model_name}",
            f"choose one of: {', '.join(known)}" if known else "run `morphlake ingest` / `morphlake embed` first",
        )


def z_mu_columns(con: duckdb.DuckDBPyConnection, view: str) -> list[str]:
    names = [r[0] for r in con.execute(f"describe select * from {view}").fetchall()]
    return flat_z_mu(names)
