"""A model's latent width D, as one query and one error: morphlake (lake.embeddings_table.model_latent_dim) and dbt's
lake_latent_dim macro (macros/latent_width.sql, rendered from here) both count with it."""

from __future__ import annotations

from pathlib import PurePosixPath

from morphlake.common.generated import banner, jinja_comment, jinja_string
from morphlake.common.zcolumns import FLAT_MU_SQL

# The files of one model's embeddings, below its folder (embeddings/model_name=<m>/): what dbt's source reads.
FILES = "*/*.parquet"
LEGACY_WIDTH = 100  # dbt's width for a model with no embeddings yet: the legacy encoder's
# Each width (flat z_mu_NN columns in a file's Parquet schema) with the first file holding it; one row when the
# model's files agree.
QUERY = """select width, min(file_name) as first_file
from (
    select file_name, count(*) filter (where regexp_full_match(name, '{pattern}')) as width
    from parquet_schema({files})
    group by file_name
)
group by width
order by width"""
MIXED = "the embeddings of model {model} have different latent widths: {a} in {where_a}, {b} in {where_b}"
HINT = (
    "one model has one width: remove the partitions of the other width and re-run `morphlake ingest` / "
    "`morphlake embed`, or file a model of another size under its own --model-name"
)


def widths_sql(files: str) -> str:
    """The query over `files`, a SQL string literal (a glob or a list)."""
    return QUERY.format(files=files, pattern=FLAT_MU_SQL)


def mixed_widths(model: str, widths: list[tuple[int, str]], *, folder: str) -> str:
    """The error for a model whose files disagree, from the query's first two rows (width, first file): each file
    named by its partition under `folder`, the model's folder relative to the lake (DuckDB gives the files' paths
    normalised, so they are not cut at the lake's own path)."""
    (a, file_a), (b, file_b) = widths[:2]
    where_a, where_b = (f"{folder}/{PurePosixPath(file).parent.name}" for file in (file_a, file_b))
    return MIXED.format(model=model, a=a, where_a=where_a, b=b, where_b=where_b)


def dbt_macro() -> str:
    """The rule as the dbt macro `lake_latent_dim(model_name)` (macros/latent_width.sql): the same query, the same
    message (Jinja's str.format with MIXED's own fields)."""
    before, after = " ".join(QUERY.replace("{pattern}", FLAT_MU_SQL).split()).split("{files}")
    fields = "model=model_name, a=rows[0][0], where_a=where[0], b=rows[1][0], where_b=where[1]"
    header = jinja_comment(
        banner("morphlake.common.latent_width (the one latent-width rule; morphlake counts with it too)")
    )
    return f"""{header}


{{#- How many z_mu_NN columns the Parquet schemas of a model's embeddings files hold; {LEGACY_WIDTH} when there are
    none. Files of one model that disagree are an error naming both widths, with the partitions they are in. -#}}
{{% macro lake_latent_dim(model_name) %}}
  {{%- if not execute -%}}{{{{ return({LEGACY_WIDTH}) }}}}{{%- endif -%}}
  {{%- set files = sql_literal(glob_escape(lake_root() ~ '/embeddings/model_name=' ~ model_name) ~ '/{FILES}') -%}}
  {{%- if run_query("select count(*) from glob(" ~ files ~ ")").columns[0].values()[0] | int == 0 -%}}
    {{{{ return({LEGACY_WIDTH}) }}}}
  {{%- endif -%}}
  {{%- set query = {jinja_string(before, indent=6)}
      ~ files ~ {jinja_string(after, indent=6)} -%}}
  {{%- set rows = run_query(query).rows -%}}
  {{%- if rows | length > 1 -%}}
    {{%- set where = [] -%}}
    {{%- for row in rows[:2] -%}}
      {{%- do where.append('embeddings/model_name=' ~ model_name ~ '/' ~ row[1].split('/')[-2]) -%}}
    {{%- endfor -%}}
    {{%- set mixed = {jinja_string(MIXED, indent=8)} -%}}
    {{%- set hint = {jinja_string(HINT, indent=8)} -%}}
    {{%- set message = mixed.format(
        {fields}) -%}}
    {{{{ exceptions.raise_compiler_error(message ~ "\\n  hint: " ~ hint) }}}}
  {{%- endif -%}}
  {{{{ return(rows[0][0] | int) }}}}
{{% endmacro %}}
"""


__all__ = ["FILES", "LEGACY_WIDTH", "QUERY", "MIXED", "HINT", "widths_sql", "mixed_widths", "dbt_macro"]
