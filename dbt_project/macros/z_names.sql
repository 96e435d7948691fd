{#- GENERATED from morphlake.common.zcolumns (the one z-column grammar) by `python -m morphlake.lake.dbt_files
    --write`: do not edit by hand (CI checks it is current). -#}


{#- z_mu_07: the lake's name of index 07 of kind mu (the mean) or sigma (the log-variance). -#}
{% macro flat_z_name(kind, index) %}
  {{ return("z_{kind}_{index:02d}".format(kind=kind, index=index)) }}
{% endmacro %}


{#- The name of a z index under z_schema: flat (z_mu_07), or bio_nuisance (z_mu_n_07 for the first `nuisance`
    indices, z_mu_b_20 for the rest). -#}
{% macro z_name(kind, index, z_schema, nuisance) %}
  {%- if z_schema == 'bio_nuisance' -%}
    {{ return("z_{kind}_{part}_{index:02d}".format(kind=kind, part='n' if index < nuisance else 'b', index=index)) }}
  {%- endif -%}
  {{ return(flat_z_name(kind, index)) }}
{% endmacro %}
