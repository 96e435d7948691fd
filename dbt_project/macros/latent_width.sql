{#- GENERATED from morphlake.common.latent_width (the one latent-width rule; morphlake counts with it too) by
    `python -m morphlake.lake.dbt_files --write`: do not edit by hand (CI checks it is current). -#}


{#- How many z_mu_NN columns the Parquet schemas of a model's embeddings files hold; 100 when there are
    none. Files of one model that disagree are an error naming both widths, with the partitions they are in. -#}
{% macro lake_latent_dim(model_name) %}
  {%- if not execute -%}{{ return(100) }}{%- endif -%}
  {%- set files = sql_literal(glob_escape(lake_root() ~ '/embeddings/model_name=' ~ model_name) ~ '/*/*.parquet') -%}
  {%- if run_query("select count(*) from glob(" ~ files ~ ")").columns[0].values()[0] | int == 0 -%}
    {{ return(100) }}
  {%- endif -%}
  {%- set query = "select width, min(file_name) as first_file from ( select file_name, count(*) "
      ~ "filter (where regexp_full_match(name, 'z_mu_[0-9]+')) as width from "
      ~ "parquet_schema("
      ~ files ~ ") group by file_name ) group by width order by width" -%}
  {%- set rows = run_query(query).rows -%}
  {%- if rows | length > 1 -%}
    {%- set where = [] -%}
    {%- for row in rows[:2] -%}
      {%- do where.append('embeddings/model_name=' ~ model_name ~ '/' ~ row[1].split('/')[-2]) -%}
    {%- endfor -%}
    {%- set mixed = "the embeddings of model {model} have different latent widths: {a} in {where_a}, "
        ~ "{b} in {where_b}" -%}
    {%- set hint = "one model has one width: remove the partitions of the other width and re-run "
        ~ "`morphlake ingest` / `morphlake embed`, or file a model of another size under "
        ~ "its own --model-name" -%}
    {%- set message = mixed.format(
        model=model_name, a=rows[0][0], where_a=where[0], b=rows[1][0], where_b=where[1]) -%}
    {{ exceptions.raise_compiler_error(message ~ "\n  hint: " ~ hint) }}
  {%- endif -%}
  {{ return(rows[0][0] | int) }}
{% endmacro %}
