"""Whether a lake table's files share one Parquet schema, as one query: dbt's lake_table macro then reads them without
union_by_name (macros/file_shapes.sql, rendered from here), and the build plan records the answer as a compile fact."""

from __future__ import annotations

import duckdb

from morphlake.common.generated import banner, jinja_comment, jinja_string

# union_by_name makes DuckDB unify every file's schema each time a query binds a view over the table: on a 1M-snip
# lake (100 files a table) a df03 export run or a data test bound ~2x slower with it. DuckDB matches columns by name
# across files either way; without it, a file with a column the first file lacks would be read without that column
# (and one lacking a column of the first file is an error), so it is left out only when every file has one shape.
# A file's shape: its schema's elements, each name with the type DuckDB reads it as, in a fixed order (not the root,
# which writers name differently, nor nullability: a file rewritten by Polars keeps the shape pyarrow wrote).
QUERY = """select count(distinct shape) = 1
from (
    select file_name, string_agg(element, ',' order by element) as shape
    from (select file_name, concat_ws(' ', name, duckdb_type) as element from parquet_schema({files})
        where duckdb_type is not null)
    group by file_name
)"""


def shapes_sql(files: str) -> str:
    """The query over `files`, a SQL string literal (a glob or a list)."""
    return QUERY.format(files=files)


def one_shape(con: duckdb.DuckDBPyConnection, files: str) -> bool:
    """Whether every file of `files` (a SQL string literal; at least one file must match) has one schema. False when
    a file cannot be read (a truncated Parquet file): dbt, compiling the same query, then fails naming it."""
    try:
        return bool(con.execute(shapes_sql(files)).fetchall()[0][0])
    except duckdb.Error:
        return False


def dbt_macro() -> str:
    """The rule as the dbt macro `lake_one_shape(files)` (macros/file_shapes.sql): the same query."""
    before, after = " ".join(QUERY.split()).split("{files}")
    header = jinja_comment(banner("morphlake.common.file_shapes (the build plan records the same answer)"))
    return f"""{header}


{{#- Whether every file of `files` (a SQL string literal of a glob that matches at least one file) has one Parquet
    schema: then lake_table reads them without union_by_name, which binds ~2x faster. -#}}
{{% macro lake_one_shape(files) %}}
  {{%- if not execute -%}}{{{{ return(false) }}}}{{%- endif -%}}
  {{%- set query = {jinja_string(before, indent=6)}
      ~ files ~ {jinja_string(after, indent=6)} -%}}
  {{{{ return(run_query(query).columns[0].values()[0]) }}}}
{{% endmacro %}}
"""


__all__ = ["QUERY", "shapes_sql", "one_shape", "dbt_macro"]
