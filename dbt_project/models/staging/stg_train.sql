{#- One row per (train_name, snip_id): training metadata sets as ingested. -#}
with source as (
    select * from {{ lake_source('train', {'snip_id': 'varchar', 'train_name': 'varchar'}) }}
),

final as (
    select * replace (cast(train_name as varchar) as train_name) from source
)

select * from final
