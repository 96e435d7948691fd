{#- One row per snip_id: the embryo metadata table (df02) as ingested, every column kept. -#}
{%- set empty = {'snip_id': 'varchar', 'embryo_id': 'varchar', 'experiment_date': 'varchar', 'well': 'varchar',
                 'time_int': 'bigint', 'Time Rel (s)': 'double', 'predicted_stage_hpf': 'double',
                 'surface_area_um': 'double', 'short_pert_name': 'varchar', 'phenotype': 'varchar',
                 'control_flag': 'boolean', 'temperature': 'double', 'medium': 'varchar', 'use_embryo_flag': 'boolean'} -%}

with source as (
    select * from {{ lake_table('raw/df02/*/*.parquet', empty) }}
),

final as (
    select * replace (cast(experiment_date as varchar) as experiment_date) from source
)

select * from final
