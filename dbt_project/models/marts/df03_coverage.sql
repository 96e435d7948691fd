{#- One row per experiment in df02: how many df02 rows, and how many usable rows (use_embryo_flag), have an
    embedding of the chosen model, on df03's join (snip_id and experiment_date). The counts are morphlake's one
    coverage query (macros/coverage.sql), which `morphlake status` and build06 run too. -#}
with embeddings as (
    select
        snip_id,
        experiment_date,
        source
    from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

counts as (
    {{ coverage_counts(ref('stg_df02'), 'embeddings') }}
),

final as (
    select
        experiment_date,
        {{ sql_literal(var('model_name')) }} as model_name,
        df02_rows,
        embedded_rows as df03_rows,
        round(embedded_rows / df02_rows, 4) as coverage_all,
        usable_rows,
        usable_embedded_rows as embedded_rows,
        case
            when usable_rows = 0 then null
            else round(usable_embedded_rows / usable_rows, 4)
        end as coverage,
        legacy_rows,
        onnx_rows
    from counts
)

select * from final
order by experiment_date
