{#- The lake root, absolute so views work from any directory: set by `morphlake build`, else found from the
    warehouse file, which DuckDB names by its real path: <lake>/builds/<build>/warehouse.duckdb once
    `morphlake build` has published (<lake>/warehouse.duckdb links there), else <lake>/warehouse.duckdb. -#}
{% macro lake_root() %}
  {%- if env_var('MORPHLAKE_LAKE_ROOT', '') -%}{{ return(env_var('MORPHLAKE_LAKE_ROOT')) }}{%- endif -%}
  {%- if not execute -%}{{ return('/lake-root-at-run-time') }}{%- endif -%}
  {%- set result = run_query("select path from duckdb_databases() where database_name = current_database()") -%}
  {%- set parts = result.columns[0].values()[0].split('/') -%}
  {%- if parts | length > 3 and parts[-3] == 'builds' -%}{{ return(parts[:-3] | join('/')) }}{%- endif -%}
  {{ return(parts[:-1] | join('/')) }}
{% endmacro %}


{#- A path as a DuckDB glob matching exactly it (a lake under `br[1]`): *, ? and [ as one-character classes
    (morphlake.common.sqltext.glob_escape does the same). -#}
{% macro glob_escape(path) -%}
  {{ path | replace('[', '[[]') | replace('*', '[*]') | replace('?', '[?]') }}
{%- endmacro %}


{#- SQL string literal with quotes escaped (values from vars never reach SQL unquoted). -#}
{% macro sql_literal(value) -%}
  '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- A lake table declared as a source (models/staging/_lake__sources.yml: its files in meta.files, relative to
    the lake root): read_parquet over its files, or an empty typed relation while it has none. -#}
{% macro lake_source(name, empty_columns) %}
  {%- set relation = source('lake', name) -%}  {#- the dependency, for lineage; the files are read directly -#}
  {%- if not execute -%}{{ return(empty_relation(empty_columns)) }}{%- endif -%}
  {%- set declared = graph.sources['source.morphlake.lake.' ~ name] -%}
  {{ return(lake_table(declared.meta.files, empty_columns)) }}
{% endmacro %}


{#- read_parquet over a lake table's files (by name across files of several shapes: macros/file_shapes.sql); an empty
    typed relation when the table has no files yet. -#}
{% macro lake_table(relative_glob, empty_columns) %}
  {%- set pattern = glob_escape(lake_root()) ~ '/' ~ relative_glob -%}
  {%- set found = 1 -%}
  {%- if execute -%}
    {%- set found = run_query("select count(*) from glob(" ~ sql_literal(pattern) ~ ")").columns[0].values()[0] -%}
  {%- endif -%}
  {%- if found | int > 0 -%}
    read_parquet({{ sql_literal(pattern) }}, hive_partitioning = false, union_by_name = {{ 'false' if lake_one_shape(sql_literal(pattern)) else 'true' }})
  {%- else -%}
    {{ empty_relation(empty_columns) }}
  {%- endif -%}
{% endmacro %}


{#- A relation with these columns (name -> type) and no rows. -#}
{% macro empty_relation(columns) %}
  (select {% for name, type in columns.items() %}null::{{ type }} as {{ adapter.quote(name) }}{{ ", " if not loop.last }}{% endfor %} limit 0)
{%- endmacro %}


{#- The df03 Parquet export that the df03 view reads, with the schema file beside it (df03_schema.parquet: no rows,
    df03's columns, and in its metadata the export's model and z naming), so an empty export still has its columns:
    every Parquet file of the build folder `morphlake build` is filling (MORPHLAKE_BUILD_DIR), else of the published
    build, <lake>/builds/current (which <lake>/exports/df03 links into). When there is no export yet, or it is another
    model's or naming's than the vars ask for (a plain `dbt build --vars ...`): `joined` (int_df03), the same rows the
    export would hold. -#}
{% macro df03_export_relation(joined, z_schema) %}
  {%- set build = env_var('MORPHLAKE_BUILD_DIR', '') or (lake_root() ~ '/builds/current') -%}
  {%- set schema_file = glob_escape(build) ~ '/df03_schema.parquet' -%}
  {%- set ns = namespace(matches=false) -%}
  {%- set count_query = "select count(*) from glob(" ~ sql_literal(schema_file) ~ ")" -%}
  {%- if execute and run_query(count_query).columns[0].values()[0] | int > 0 -%}
    {%- set meta = {} -%}
    {%- set meta_query = "select decode(key), decode(value) from parquet_kv_metadata("
        ~ sql_literal(schema_file) ~ ")" -%}
    {%- for key, value in run_query(meta_query).rows -%}
      {%- do meta.update({key: value}) -%}
    {%- endfor -%}
    {%- set ns.matches = meta.get('model_name') == var('model_name') and meta.get('z_schema') == z_schema -%}
  {%- endif -%}
  {%- if execute and env_var('MORPHLAKE_BUILD_DIR', '') and not ns.matches -%}
    {{ exceptions.raise_compiler_error("the export morphlake build wrote in " ~ build ~ " is not model "
        ~ var('model_name') ~ " named " ~ z_schema ~ ": a bug in morphlake build") }}
  {%- endif -%}
  {%- if ns.matches -%}
    read_parquet({{ sql_literal(glob_escape(build) ~ '/**/*.parquet') }}, hive_partitioning = false)
  {%- else -%}
    {{ joined }}
  {%- endif -%}
{% endmacro %}
