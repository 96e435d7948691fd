{#- The lake root, absolute so views work from any directory: set by `morphlake build`, else the folder
    holding the warehouse file. -#}
{% macro lake_root() %}
  {%- if env_var('MORPHLAKE_LAKE_ROOT', '') -%}{{ return(env_var('MORPHLAKE_LAKE_ROOT')) }}{%- endif -%}
  {%- if not execute -%}{{ return('/lake-root-at-run-time') }}{%- endif -%}
  {%- set result = run_query("select path from duckdb_databases() where database_name = current_database()") -%}
  {%- set path = result.columns[0].values()[0] -%}
  {{ return(path.rsplit('/', 1)[0]) }}
{% endmacro %}


{#- SQL string literal with quotes escaped (values from vars never reach SQL unquoted). -#}
{% macro sql_literal(value) -%}
  '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- read_parquet over a lake table's files; an empty typed relation when the table has no files yet. -#}
{% macro lake_table(relative_glob, empty_columns) %}
  {%- set pattern = lake_root() ~ '/' ~ relative_glob -%}
  {%- set found = 1 -%}
  {%- if execute -%}
    {%- set found = run_query("select count(*) from glob(" ~ sql_literal(pattern) ~ ")").columns[0].values()[0] -%}
  {%- endif -%}
  {%- if found | int > 0 -%}
    read_parquet({{ sql_literal(pattern) }}, hive_partitioning = false, union_by_name = true)
  {%- else -%}
    {{ empty_relation(empty_columns) }}
  {%- endif -%}
{% endmacro %}


{#- A relation with these columns (name -> type) and no rows. -#}
{% macro empty_relation(columns) %}
  (select {% for name, type in columns.items() %}null::{{ type }} as {{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor %} limit 0)
{%- endmacro %}
