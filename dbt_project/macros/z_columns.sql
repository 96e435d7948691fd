{#- z columns for a model of any width D, named flat (z_mu_07) or in the legacy bio/nuisance view (z_mu_n_07,
    z_mu_b_20) of the same index by z_name() (macros/z_names.sql, generated from morphlake.common.zcolumns). -#}

{#- A per-model var: a value, or {model: value, …} read for var model_name (none when it is not listed). -#}
{% macro model_var(name) %}
  {%- set value = var(name, none) -%}
  {%- if value is mapping -%}{%- set value = value.get(var('model_name')) -%}{%- endif -%}
  {{ return(value) }}
{% endmacro %}


{#- The width D of var model_name's z vectors: var latent_dim when it gives a number, else (auto) counted in
    the model's embeddings (lake_latent_dim(), macros/latent_width.sql), else the legacy encoder's 100. -#}
{% macro latent_dim() %}
  {%- set given = model_var('latent_dim') -%}
  {%- if given is none or given == 'auto' -%}{{ return(lake_latent_dim(var('model_name'))) }}{%- endif -%}
  {%- if given is not number or given | int != given or given < 1 -%}
    {{ exceptions.raise_compiler_error(
        "var latent_dim is '" ~ given ~ "'; give a whole number, {model: number, …} or auto") }}
  {%- endif -%}
  {{ return(given | int) }}
{% endmacro %}


{#- var zn_frac (a number, or {model: number, …}); the legacy 0.2 when the model is not listed. -#}
{% macro zn_frac() %}
  {%- set given = model_var('zn_frac') -%}
  {%- if given is none -%}{{ return(0.2) }}{%- endif -%}
  {%- if given is not number or given < 0 or given > 1 -%}
    {{ exceptions.raise_compiler_error(
        "var zn_frac is '" ~ given ~ "'; give a share from 0 to 1, or {model: share, …}") }}
  {%- endif -%}
  {{ return(given | float) }}
{% endmacro %}


{#- Nuisance dims are the first floor(D * zn_frac). -#}
{% macro nuisance_dims(dim=none) %}
  {{ return(((dim if dim is not none else latent_dim()) * zn_frac()) | int) }}
{% endmacro %}


{#- `auto`: bio_nuisance when the model's legacy store used those names, else flat. -#}
{% macro resolve_z_schema(embeddings_relation) %}
  {%- set requested = var('z_schema') -%}
  {%- if requested not in ('auto', 'flat', 'bio_nuisance') -%}
    {{ exceptions.raise_compiler_error(
        "var z_schema is '" ~ requested ~ "'; choose one of: auto, flat, bio_nuisance") }}
  {%- endif -%}
  {%- if requested != 'auto' -%}{{ return(requested) }}{%- endif -%}
  {%- if not execute -%}{{ return('flat') }}{%- endif -%}
  {%- set found = run_query("select count(*) from " ~ embeddings_relation
      ~ " where model_name = " ~ sql_literal(var('model_name')) ~ " and z_naming = 'bio_nuisance'") -%}
  {{ return('bio_nuisance' if found.columns[0].values()[0] | int > 0 else 'flat') }}
{% endmacro %}


{#- `alias.z_mu_00 as <name>, …` for every column of each kind in `kinds` (mu: the means, sigma: the
    log-variances), D of each, in that order. -#}
{% macro z_select(alias, z_schema, kinds=('mu', 'sigma')) %}
  {%- set dim = latent_dim() -%}
  {%- set nuisance = nuisance_dims(dim) -%}
  {%- for kind in kinds -%}
    {%- set last_kind = loop.last -%}
    {%- for i in range(dim) -%}
      {%- set stored = alias ~ '.' ~ flat_z_name(kind, i) -%}
      {{ stored }} as {{ z_name(kind, i, z_schema, nuisance) }}{{ ",\n    " if not (last_kind and loop.last) }}
    {%- endfor -%}
  {%- endfor -%}
{% endmacro %}


{#- The mean as one FLOAT[D] vector, for array_cosine_similarity and friends, from z columns named by z_schema. -#}
{% macro z_mu_vector(alias, z_schema='flat') %}
  {%- set dim = latent_dim() -%}
  {%- set nuisance = nuisance_dims(dim) -%}
  {%- set names = [] -%}
  {%- for i in range(dim) -%}
    {%- do names.append(alias ~ '.' ~ z_name('mu', i, z_schema, nuisance)) -%}
  {%- endfor -%}
  [{{ names | join(", ") }}]::FLOAT[{{ dim }}]
{%- endmacro %}


{#- Column -> type map of the embeddings table, for an empty stand-in before any embeddings exist: the
    metadata columns (embedding_meta_columns(), generated in macros/schemas.sql), then float z columns. These
    span var model_name's width and at least the legacy encoder's 100: stg_embeddings holds every model, and the
    df03 unit tests (a 100-wide test model) bind to its columns in a lake of narrower models. -#}
{% macro embedding_columns() %}
  {%- set cols = embedding_meta_columns() -%}
  {%- for kind in ('mu', 'sigma') -%}
    {%- for i in range([latent_dim(), 100] | max) -%}
      {%- do cols.update({flat_z_name(kind, i): 'float'}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(cols) }}
{% endmacro %}
