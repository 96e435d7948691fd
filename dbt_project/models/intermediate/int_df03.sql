{#- df03 as the lake's tables give it now (the next build's export): one row per df02 snip with an embedding of
    the chosen model (var model_name), whatever its use_embryo_flag (the legacy step's grain: analysts filter on
    the flag themselves): df02's columns in their order, the embedding's provenance, the z_mu columns named by var
    z_schema. The legacy df03 carries z_mu only; the log-variances (z_sigma) are in df03_z_sigma, one join away,
    which keeps them out of the export (~45% of its bytes and of the time to write it). -#}
{%- set z_schema = resolve_z_schema(ref('stg_embeddings')) -%}

with df02 as (
    select * from {{ ref('stg_df02') }}
),

embeddings as (
    select * from {{ ref('stg_embeddings') }}
    where model_name = {{ sql_literal(var('model_name')) }}
),

joined as (
    select
        df02.*,
        embeddings.model_name,
        embeddings.source as embedding_source,
        embeddings.encoder_weights,
        embeddings.model_sha256,
        embeddings.image_fingerprint,
        embeddings.embed_options,
        embeddings.run_id as embedding_run_id,
        {{ z_select('embeddings', z_schema, kinds=['mu']) }}
    from
        df02
    {# experiment_date too: a filter on it (the export writes one run of experiments at a time)
        then reaches both sides' files, instead of scanning every embedding to join a few experiments.
        df03_coverage joins the same way, so "has an embedding" means one thing in both. #}
    inner join embeddings
        on df02.snip_id = embeddings.snip_id and df02.experiment_date = embeddings.experiment_date
),

final as (
    select * from joined
)

select * from final
