{#- One row per snip image file found at ingest (the ledger). -#}
{%- set empty = {'snip_id': 'varchar', 'experiment_date': 'varchar', 'path': 'varchar', 'format': 'varchar',
                 'width': 'integer', 'height': 'integer', 'mode': 'varchar', 'file_size': 'bigint',
                 'mtime_ns': 'bigint', 'fingerprint': 'varchar'} -%}

with source as (
    select * from {{ lake_table('raw/snips/*/*.parquet', empty) }}
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
        fingerprint as image_fingerprint
    from source
)

select * from final
