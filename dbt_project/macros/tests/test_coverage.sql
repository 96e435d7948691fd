{#- Fails when the embedded share of usable rows is under threshold: over all experiments, or
    (per_experiment=true) with one row per experiment under it. -#}
{% test coverage(model, usable_column, embedded_column, threshold=none, per_experiment=false) %}
  {%- set threshold = threshold if threshold is not none else var('coverage_threshold') -%}

with per_experiment as (
    select experiment_date, sum({{ usable_column }}) as usable, sum({{ embedded_column }}) as embedded
    from {{ model }}
    group by experiment_date
),

overall as (
    select '(all experiments)' as experiment_date, sum(usable) as usable, sum(embedded) as embedded from per_experiment
),

shares as (
    select experiment_date, usable, embedded,
           case when usable = 0 then 1.0 else embedded / usable end as coverage
    from {{ "per_experiment" if per_experiment else "overall" }}
)

select *, {{ threshold }} as threshold
from shares
where coverage < {{ threshold }}

{% endtest %}
