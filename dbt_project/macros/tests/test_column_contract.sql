{#- Fails with each required column that is missing or has another type; extra columns are allowed
    (df02 carries dozens of lab-specific columns that must pass through). -#}
{% test column_contract(model, columns) %}
{%- set actual = {} -%}
{%- for col in adapter.get_columns_in_relation(model) -%}
  {%- do actual.update({col.name: col.dtype | upper}) -%}
{%- endfor -%}

select * from (
    values
    {%- for name, expected in columns.items() %}
    ({{ sql_literal(name) }}, {{ sql_literal(expected | upper) }}, {{ sql_literal(actual.get(name, 'missing')) }}){{ "," if not loop.last }}
    {%- endfor %}
) as contract(column_name, expected_type, actual_type)
where expected_type != actual_type

{% endtest %}
