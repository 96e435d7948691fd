{#- Fails with each required column that is missing or has another type; extra columns are allowed
    (df02 carries dozens of lab-specific columns that must pass through). `columns`: {name: type}; `including`:
    more of them, e.g. a generated schema macro's ("{{ df02_columns() }}"), checked first. -#}
{% test column_contract(model, columns, including=none) %}
  {#- (at parse time dbt renders macro calls in the arguments as '') -#}
  {%- if execute and including is not none and including is not mapping -%}
    {{ exceptions.raise_compiler_error("column_contract: including is '" ~ including ~ "'; give {name: type, …}") }}
  {%- endif -%}
  {%- set required = {} -%}
  {%- do required.update(including or {}) -%}
  {%- do required.update(columns) -%}
  {%- set actual = {} -%}
  {%- for col in adapter.get_columns_in_relation(model) -%}
    {%- do actual.update({col.name: col.dtype | upper}) -%}
  {%- endfor -%}
  {%- set rows = [] -%}
  {%- for name, expected in required.items() -%}
    {%- set values = [sql_literal(name), sql_literal(expected | upper), sql_literal(actual.get(name, 'missing'))] -%}
    {%- do rows.append("(" ~ values | join(", ") ~ ")") -%}
  {%- endfor -%}

select * from (
    values {{ rows | join(",\n    ") }}
) as contract(column_name, expected_type, actual_type)
where expected_type != actual_type

{% endtest %}
