{#- z column names: flat (z_mu_07) or the legacy bio/nuisance view (z_mu_n_07, z_mu_b_20) of the same index. -#}
{% macro nuisance_dims() %}
  {{ return((var('latent_dim') | int * var('zn_frac') | float) | int) }}
{% endmacro %}


{% macro z_name(kind, index, z_schema) %}
  {%- set idx = '%02d' % index -%}
  {%- if z_schema == 'bio_nuisance' -%}
    {{ return('z_' ~ kind ~ '_' ~ ('n' if index < nuisance_dims() | int else 'b') ~ '_' ~ idx) }}
  {%- endif -%}
  {{ return('z_' ~ kind ~ '_' ~ idx) }}
{% endmacro %}


{#- `auto`: bio_nuisance when the model's legacy store used those names, else flat. -#}
{% macro resolve_z_schema(embeddings_relation) %}
  {%- set requested = var('z_schema') -%}
  {%- if requested not in ('auto', 'flat', 'bio_nuisance') -%}
    {{ exceptions.raise_compiler_error("var z_schema is '" ~ requested ~ "'; choose one of: auto, flat, bio_nuisance") }}
  {%- endif -%}
  {%- if requested != 'auto' -%}{{ return(requested) }}{%- endif -%}
  {%- if not execute -%}{{ return('flat') }}{%- endif -%}
  {%- set found = run_query("select count(*) from " ~ embeddings_relation ~ " where model_name = " ~ sql_literal(var('model_name')) ~ " and z_naming = 'bio_nuisance'") -%}
  {{ return('bio_nuisance' if found.columns[0].values()[0] | int > 0 else 'flat') }}
{% endmacro %}


{#- `alias.z_mu_00 as <name>, …` for every mean then every log-variance column. -#}
{% macro z_select(alias, z_schema) %}
  {%- for kind in ('mu', 'sigma') -%}
    {%- for i in range(var('latent_dim') | int) -%}
      {{ alias }}.z_{{ kind }}_{{ '%02d' % i }} as {{ z_name(kind, i, z_schema) }}{{ ",\n    " if not (kind == 'sigma' and loop.last) }}
    {%- endfor -%}
  {%- endfor -%}
{% endmacro %}


{#- The mean as one FLOAT[D] vector, for array_cosine_similarity and friends. -#}
{% macro z_mu_vector(alias) %}
  [{%- for i in range(var('latent_dim') | int) -%}{{ alias }}.z_mu_{{ '%02d' % i }}{{ ", " if not loop.last }}{%- endfor -%}]::FLOAT[{{ var('latent_dim') }}]
{%- endmacro %}


{#- Column -> type map of the embeddings table, for an empty stand-in before any embeddings exist. -#}
{% macro embedding_columns() %}
  {%- set cols = {'snip_id': 'varchar', 'experiment_date': 'varchar', 'model_name': 'varchar', 'source': 'varchar',
                  'encoder_weights': 'varchar', 'model_sha256': 'varchar', 'image_fingerprint': 'varchar', 'embed_options': 'varchar',
                  'z_naming': 'varchar', 'run_id': 'varchar'} -%}
  {%- for kind in ('mu', 'sigma') -%}
    {%- for i in range(var('latent_dim') | int) -%}
      {%- do cols.update({'z_' ~ kind ~ '_' ~ ('%02d' % i): 'float'}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(cols) }}
{% endmacro %}
