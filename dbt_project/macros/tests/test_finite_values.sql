{#- Fails with one row per (key, column) holding NaN or ±Inf, over every floating column whose name starts with prefix.
    Null is not non-finite (isfinite(null) is null, and unpivot drops nulls): a legacy store that kept only
    z_mu leaves z_sigma null. -#}
{% test finite_values(model, prefix='z_', key='snip_id') %}
  {#- columns read with DESCRIBE: with a `where` config, model is a subquery, not a relation -#}
  {%- set columns = [] -%}
  {%- if execute -%}
    {%- for name, dtype in run_query("select column_name, column_type from (describe select * from " ~ model ~ ")").rows -%}
      {%- if name.startswith(prefix) and dtype | lower in ('float', 'double', 'real', 'float4', 'float8') -%}
        {%- do columns.append(adapter.quote(name)) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if execute and columns | length == 0 -%}
    {{ exceptions.raise_compiler_error("finite_values: " ~ model ~ " has no floating columns starting with '" ~ prefix ~ "'") }}
  {%- endif -%}

with offending_rows as (
    select {{ key }}, {{ columns | join(', ') }}
    from {{ model }}
    where {% for c in columns %}not isfinite({{ c }}){{ " or " if not loop.last }}{% endfor %}
),

cells as (
    unpivot offending_rows on {{ columns | join(', ') }} into name column_name value value
)

select {{ key }}, column_name, value from cells where not isfinite(value)

{% endtest %}
