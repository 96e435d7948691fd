{#- The log-variances (z_sigma) of df03's embeddings, named by var z_schema like df03's z_mu: df03 and its export carry
    the means only (as the legacy df03 did), and this is what joins them back on snip_id. Only the embedding df03
    holds (same snip, experiment and run): an embedding replaced since the last build is left out, never paired with
    the old means. -#}
{%- set z_schema = resolve_z_schema(ref('stg_embeddings')) -%}

with df03 as (
    select
        snip_id,
        experiment_date,
        embedding_run_id
    from {{ ref('df03') }}
),

embeddings as (
    select * from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

final as (
    select
        embeddings.snip_id,
        embeddings.experiment_date,
        embeddings.run_id as embedding_run_id,
        {{ z_select('embeddings', z_schema, kinds=['sigma']) }}
    from embeddings
    inner join df03
        on
            embeddings.snip_id = df03.snip_id
            and embeddings.experiment_date = df03.experiment_date
            and embeddings.run_id = df03.embedding_run_id
)

select * from final
