{#- Use the schema a folder asks for (staging, marts) as is, without dbt's `main_` prefix. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
