{#- One row per (train_name, snip_id): training metadata sets as ingested, every column kept. Before any: none,
    with the required columns (train_columns(), generated in macros/schemas.sql). -#}
with source as (
    select * from {{ lake_source('train', train_columns()) }}
),

final as (
    select * replace (cast(train_name as varchar) as train_name) from source
)

select * from final
