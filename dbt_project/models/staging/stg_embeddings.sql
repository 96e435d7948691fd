{#- One row per (model_name, snip_id): every model's embeddings, legacy-store and ONNX rows alike. -#}
with source as (
    {#- by name with the full column set, so partitions written before a metadata column existed read as null -#}
    select * from {{ empty_relation(embedding_columns()) }}
    union all by name
    select * from {{ lake_source('embeddings', embedding_columns()) }}
),

final as (
    select
        * replace (
            cast(experiment_date as varchar) as experiment_date,
            cast(model_name as varchar) as model_name
        )
    from source
)

select * from final
