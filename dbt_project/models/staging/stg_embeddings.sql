{#- One row per (model_name, snip_id): every model's embeddings, legacy-store and ONNX rows alike. -#}
with source as (
    select * from {{ lake_table('embeddings/*/*/*.parquet', embedding_columns()) }}
),

final as (
    select * replace (
        cast(experiment_date as varchar) as experiment_date,
        cast(model_name as varchar) as model_name
    )
    from source
)

select * from final
