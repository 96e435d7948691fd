{#- GENERATED from morphlake.common.file_shapes (the build plan records the same answer) by `python -m
    morphlake.lake.dbt_files --write`: do not edit by hand (CI checks it is current). -#}


{#- Whether every file of `files` (a SQL string literal of a glob that matches at least one file) has one Parquet
    schema: then lake_table reads them without union_by_name, which binds ~2x faster. -#}
{% macro lake_one_shape(files) %}
  {%- if not execute -%}{{ return(false) }}{%- endif -%}
  {%- set query = "select count(distinct shape) = 1 from ( select file_name, string_agg(element, "
      ~ "',' order by element) as shape from (select file_name, concat_ws(' ', name, "
      ~ "duckdb_type) as element from parquet_schema("
      ~ files ~ ") where duckdb_type is not null) group by file_name )" -%}
  {{ return(run_query(query).columns[0].values()[0]) }}
{% endmacro %}
