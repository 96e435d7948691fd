{#- One row per (train_name, snip_id) of the training metadata, with the chosen model's z columns when present. -#}
{%- set z_schema = resolve_z_schema(ref('stg_embeddings')) -%}

with train as (
    select * from {{ ref('stg_train') }}
),

embeddings as (
    select * from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

joined as (
    select
        train.*,
        embeddings.snip_id is not null as has_embedding,
        embeddings.source as embedding_source,
        {{ z_select('embeddings', z_schema) }}
    from train
    left join embeddings on train.snip_id = embeddings.snip_id
),

final as (
    select * from joined
)

select * from final
