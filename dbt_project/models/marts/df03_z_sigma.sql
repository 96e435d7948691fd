{#- The log-variances (z_sigma) of var model_name's embeddings, named by var z_schema like df03's z_mu: df03 and its
    export carry the means only (as the legacy df03 did), and this is what joins them back on snip_id. -#}
{%- set z_schema = resolve_z_schema(ref('stg_embeddings')) -%}

with embeddings as (
    select * from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

final as (
    select
        embeddings.snip_id,
        embeddings.experiment_date,
        {{ z_select('embeddings', z_schema, kinds=['sigma']) }}
    from embeddings
)

select * from final
