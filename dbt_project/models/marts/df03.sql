{#- One row per df02 snip with an embedding of the chosen model (int_df03's grain), as the last `morphlake build`
    published it: a view over the df03 Parquet export (the same files Parquet readers see, so the two always
    agree), with z_mu added back as FLOAT[D] for vector SQL. -#}
{%- set z_schema = resolve_z_schema(ref('stg_embeddings')) -%}

with exported as (
    select * from {{ df03_export_relation(ref('int_df03'), z_schema) }}
),

final as (
    select
        *,
        {{ z_mu_vector('exported', z_schema) }} as z_mu
    from exported
)

select * from final
