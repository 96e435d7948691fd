{#- One row per snip image file found at ingest (the ledger); before any: none, with the ledger's columns
    (ledger_columns(), generated in macros/schemas.sql). -#}

with source as (
    select * from {{ lake_source('snips', ledger_columns()) }}
),

final as (
    select
        snip_id,
        cast(experiment_date as varchar) as experiment_date,
        path as image_path,
        format as image_format,
        width as image_width,
        height as image_height,
        mode as image_mode,
        file_size as image_bytes,
        fingerprint as image_fingerprint,
        image_status
    from source
)

select * from final
