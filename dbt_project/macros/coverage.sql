{#- GENERATED from morphlake.common.coverage (the one coverage query; status and build06 run it too) by `python -m
    morphlake.lake.dbt_files --write`: do not edit by hand (CI checks it is current). -#}
{% macro coverage_counts(df02, embeddings, source='source') %}
select
    df02.experiment_date,
    count(*) as df02_rows,
    count(emb.snip_id) as embedded_rows,
    count(*) filter (where coalesce(df02.use_embryo_flag, false)) as usable_rows,
    count(emb.snip_id) filter (where coalesce(df02.use_embryo_flag, false)) as usable_embedded_rows,
    count(*) filter (where emb.{{ source }} = 'legacy_csv') as legacy_rows,
    count(*) filter (where emb.{{ source }} = 'onnx') as onnx_rows
from {{ df02 }} as df02
left join {{ embeddings }} as emb
    on df02.snip_id = emb.snip_id and df02.experiment_date = emb.experiment_date
group by df02.experiment_date
order by df02.experiment_date
{% endmacro %}
