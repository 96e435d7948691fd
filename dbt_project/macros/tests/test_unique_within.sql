{#- Fails with each value of column_name that repeats (within one group_by value when given, e.g. snip_id per
    model). An incremental build (the DuckDB variable morphlake_scope set: var in_build_scope) checks only the values
    its changed experiments hold, against every row: a repeat between two unchanged experiments was refused by the
    build that last wrote them. DuckDB folds getvariable() while planning, so each build runs one branch only.
    scoped=false for a model without experiment_date (the training sets): every row, every build. -#}
{% test unique_within(model, column_name, group_by=none, scoped=true) %}
  {%- set keys = ([group_by] if group_by else []) + [column_name] %}

select {{ keys | join(', ') }}, count(*) as occurrences
from {{ model }}
where {{ "getvariable('morphlake_scope') is null and " if scoped }}{{ column_name }} is not null
group by {{ keys | join(', ') }}
having count(*) > 1
  {%- if scoped %}

union all

select {{ keys | join(', ') }}, count(*) as occurrences
from {{ model }}
where
    getvariable('morphlake_scope') is not null
    and {{ column_name }} in (
        select {{ column_name }} from {{ model }}
        where {{ var('in_build_scope') }}
    )
group by {{ keys | join(', ') }}
having count(*) > 1
{%- endif %}

{% endtest %}
