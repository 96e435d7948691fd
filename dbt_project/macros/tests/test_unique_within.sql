{#- Fails with each value of column_name that repeats within one group_by value (e.g. snip_id per model). -#}
{% test unique_within(model, column_name, group_by) %}

select {{ group_by }}, {{ column_name }}, count(*) as occurrences
from {{ model }}
where {{ column_name }} is not null
group by {{ group_by }}, {{ column_name }}
having count(*) > 1

{% endtest %}
