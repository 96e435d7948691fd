"""build06's legacy files: df03 / with-embeddings / per-experiment CSVs from the warehouse, and the sidecar."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from morphlake.common import coverage
from morphlake.common.frames import polars_frame
from morphlake.errors import MorphlakeError
from morphlake.ingest.latents import Z_COLUMN
from morphlake.lake.files import atomic_file


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [row[0] for row in con.sql(f"select column_name from (describe {relation})").fetchall()]


def z_columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [c for c in columns_of(con, relation) if Z_COLUMN.match(c)]


def check_outputs_free(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace existing legacy files unless --overwrite (checked before any work)."""
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        listed = "\n".join(f"    {p}" for p in existing)
        raise MorphlakeError(
            f"build06 would replace {len(existing)} existing file(s):\n{listed}",
            "pass --overwrite to replace them, or move them away first",
        )


def write_csv_atomic(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list,
    *,
    path: Path,
    replace: bool = True,
    scratch: Path | None = None,
) -> int:
    """Stream a query into a CSV written with atomic_file (replace=False: never over a file that appeared
    meanwhile); returns the row count."""
    rows = 0
    with atomic_file(path, replace=replace, scratch=scratch) as handle:
        for i, batch in enumerate(con.sql(sql, params=params).to_arrow_reader()):
            polars_frame(batch).write_csv(handle, include_header=(i == 0))
            rows += batch.num_rows
        if rows == 0:  # still a header, so readers see the columns
            empty = con.sql(f"select * from ({sql}) limit 0", params=params).to_arrow_table()
            polars_frame(empty).write_csv(handle)
    return rows


def legacy_columns(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> list[str]:
    """Select expressions for the legacy CSVs: booleans written as pandas writes them (True/False)."""
    types = dict(con.sql(f"select column_name, column_type from (describe {relation})").fetchall())
    return [
        f"case when {quote(c)} then 'True' when not {quote(c)} then 'False' end as {quote(c)}"
        if types.get(c) == "BOOLEAN"
        else quote(c)
        for c in columns
    ]


def z_mu_columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The relation's z_mu columns (any naming), in their order: the legacy step keeps only the means."""
    return [c for c in z_columns_of(con, relation) if (m := Z_COLUMN.match(c)) is not None and m["kind"] == "mu"]


def register_legacy_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    order: pa.Table,
    stored: pa.Table,
    generated: list[str],
    filled: list[tuple[str, str]],
    train_order: pa.Table | None,
) -> None:
    """Temp views for the legacy files (df02_order, df02's file order, is registered already): store_keys,
    train_order, and legacy_rows: the df03 rows whose latents the store holds (its files, the ones this run
    generates, and the generated rows that fill an existing file's gaps: `filled`, (snip_id, experiment)) — the
    legacy step's merge, which leaves out what else the lake holds (e.g. rows `morphlake embed --precision int8`
    made)."""
    in_generated = pc.is_in(order["experiment_date"], value_set=pa.array(generated, pa.string()))
    generated_keys = order.filter(in_generated).select(["snip_id", "experiment_date"]).cast(stored.schema)
    filled_keys = pa.table(
        {"snip_id": [snip for snip, _ in filled], "experiment_date": [exp for _, exp in filled]}, schema=stored.schema
    )
    keys = pa.concat_tables([stored, generated_keys, filled_keys])
    con.register("store_keys", keys)
    if train_order is not None:
        con.register("train_order", train_order)
    con.sql(
        "create or replace temp view legacy_rows as "
        "select df03.* from df03 join store_keys using (snip_id, experiment_date)"
    )


def df03_sql(con: duckdb.DuckDBPyConnection, experiments: list[str], *, columns: list[str]) -> tuple[str, list]:
    """The legacy step's df03: `pd.merge(df02, latents[["snip_id"] + z_mu], on="snip_id", how="inner")`:
    df02's columns in its file's order, then the z_mu columns (named by the build's z_schema), in df02's row
    order, over legacy_rows."""
    select = ", ".join(legacy_columns(con, "df03", columns) + [quote(c) for c in z_mu_columns_of(con, "df03")])
    return (
        f"select {select} from legacy_rows join df02_order o using (snip_id, experiment_date) "
        f"where list_contains(?, experiment_date) order by o.df02_row"
    ), [experiments]


def train_sql(con: duckdb.DuckDBPyConnection, train_name: str, *, columns: list[str]) -> tuple[str, list]:
    """The training metadata (its file's columns and row order) merged the same way on snip_id."""
    select = ", ".join(
        legacy_columns(con, "train_embeddings", columns) + [quote(c) for c in z_mu_columns_of(con, "train_embeddings")]
    )
    return (
        f"select {select} from train_embeddings join train_order o using (snip_id) "
        f"where train_name = ? and snip_id in (select snip_id from legacy_rows) order by o.train_row"
    ), [train_name]


def coverage_sql() -> str:
    """Per experiment: df02 rows (of this run's df02), rows in the legacy df03, usable rows and usable rows in it,
    by source: morphlake's one coverage query (morphlake.common.coverage) over these relations."""
    df02 = (
        "(select o.snip_id, o.experiment_date, d.use_embryo_flag "
        "from df02_order o join stg_df02 d using (snip_id, experiment_date))"
    )
    return coverage.coverage_sql(df02=df02, embeddings="legacy_rows", source="embedding_source")


def missing_sql() -> str:
    """df02 rows (of this run's df02) that the legacy df03 lacks."""
    return (
        "select o.experiment_date, o.snip_id from df02_order o anti join legacy_rows using (snip_id, experiment_date) "
        "order by o.df02_row"
    )


def git_commit() -> str | None:
    """The morphlake checkout's commit, when it runs from one."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def non_finite_count(con: duckdb.DuckDBPyConnection, relation: str = "legacy_rows") -> int:
    cols = z_mu_columns_of(con, relation)
    if not cols:
        return 0
    condition = " or ".join(f"not isfinite({quote(c)})" for c in cols)
    return con.sql(f"select count(*) from {relation} where {condition}").fetchall()[0][0]
