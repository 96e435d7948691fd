"""Coverage of df02 by embeddings, as one query: dbt's df03_coverage (through macros/coverage.sql, rendered from
it), `morphlake status` and build06's report all count with it."""

from __future__ import annotations

from morphlake.common.generated import banner, jinja_comment

# Per experiment of `df02`: its rows, those with a row in `embeddings` (same snip_id and experiment_date), the usable
# ones (use_embryo_flag; null counts as not usable) and the usable ones embedded, and the embedded rows by source
# (`source`: the embeddings' column naming it, legacy_csv or onnx).
COLUMNS = (
    "experiment_date",
    "df02_rows",
    "embedded_rows",
    "usable_rows",
    "usable_embedded_rows",
    "legacy_rows",
    "onnx_rows",
)
QUERY = """select
    df02.experiment_date,
    count(*) as df02_rows,
    count(emb.snip_id) as embedded_rows,
    count(*) filter (where coalesce(df02.use_embryo_flag, false)) as usable_rows,
    count(emb.snip_id) filter (where coalesce(df02.use_embryo_flag, false)) as usable_embedded_rows,
    count(*) filter (where emb.{source} = 'legacy_csv') as legacy_rows,
    count(*) filter (where emb.{source} = 'onnx') as onnx_rows
from {df02} as df02
left join {embeddings} as emb
    on df02.snip_id = emb.snip_id and df02.experiment_date = emb.experiment_date
group by df02.experiment_date
order by df02.experiment_date"""


def coverage_sql(*, df02: str, embeddings: str, source: str = "source") -> str:
    """The query over two relations (a table, a view, or a parenthesised select): df02 with snip_id,
    experiment_date and use_embryo_flag; embeddings with snip_id, experiment_date and `source`."""
    return QUERY.format(df02=df02, embeddings=embeddings, source=source)


def dbt_macro() -> str:
    """The same query as the dbt macro `coverage_counts(df02, embeddings, source)` (macros/coverage.sql)."""
    body = coverage_sql(df02="{{ df02 }}", embeddings="{{ embeddings }}", source="{{ source }}")
    header = jinja_comment(banner("morphlake.common.coverage (the one coverage query; status and build06 run it too)"))
    return f"{header}\n{{% macro coverage_counts(df02, embeddings, source='source') %}}\n{body}\n{{% endmacro %}}\n"
