{#- One row per experiment in df02: how many df02 rows, and how many usable rows (use_embryo_flag), have an
    embedding of the chosen model, on df03's join (snip_id and experiment_date). -#}
with df02 as (
    select * from {{ ref('stg_df02') }}
),

embeddings as (
    select
        snip_id,
        experiment_date,
        source
    from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

per_snip as (
    select
        df02.experiment_date,
        embeddings.source,
        coalesce(df02.use_embryo_flag, false) as usable,
        embeddings.snip_id is not null as embedded
    from df02
    left join embeddings
        on df02.snip_id = embeddings.snip_id and df02.experiment_date = embeddings.experiment_date
),

final as (
    select
        experiment_date,
        {{ sql_literal(var('model_name')) }} as model_name,
        count(*) as df02_rows,
        count(*) filter (where embedded) as df03_rows,
        round(count(*) filter (where embedded) / count(*), 4) as coverage_all,
        count(*) filter (where usable) as usable_rows,
        count(*) filter (where usable and embedded) as embedded_rows,
        case
            when count(*) filter (where usable) = 0 then null
            else round(count(*) filter (where usable and embedded) / count(*) filter (where usable), 4)
        end as coverage,
        count(*) filter (where source = 'legacy_csv') as legacy_rows,
        count(*) filter (where source = 'onnx') as onnx_rows
    from per_snip
    group by experiment_date
)

select * from final
order by experiment_date
