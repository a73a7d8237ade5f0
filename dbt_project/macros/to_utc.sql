{#- A timestamp with time zone as a UTC timestamp without one, the same on DuckDB and Postgres. -#}
{% macro to_utc(column) -%}
    ({{ column }} at time zone 'UTC')
{%- endmacro %}
