{#- A compute size in CU as people write it: 0.25, 0.5, 1, 2 (no trailing zeros). -#}
{% macro cu_label(column) -%}
    rtrim(rtrim(cast(cast({{ column }} as decimal(6, 2)) as {{ dbt.type_string() }}), '0'), '.')
{%- endmacro %}
