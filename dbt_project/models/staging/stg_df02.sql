{#- One row per snip_id: the embryo metadata table (df02) as ingested, every column kept. Before any df02 is
    ingested: its required columns, typed as ingest writes them (df02_columns(), generated in macros/schemas.sql). -#}

with source as (
    select * from {{ lake_source('df02', df02_columns()) }}
),

final as (
    select * replace (cast(experiment_date as varchar) as experiment_date) from source
)

select * from final
