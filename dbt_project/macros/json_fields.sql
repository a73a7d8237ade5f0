{#-
    A field of a JSON column by its path of keys (`['allowed_ips', 'protected_branches_only']`),
    the same on every adapter: `json_text` gives it as text (NULL when absent), `json_array_length`
    the length of the array there (NULL when absent or not an array). dlt loads JSON as DuckDB's
    JSON type and as PostgreSQL's jsonb.
-#}
{% macro json_text(column, keys) -%}
    {{ return(adapter.dispatch('json_text', 'neon_elt')(column, keys)) }}
{%- endmacro %}

{% macro default__json_text(column, keys) -%}
    ({{ column }} #>> '{{ "{" ~ keys | join(",") ~ "}" }}')
{%- endmacro %}

{% macro duckdb__json_text(column, keys) -%}
    json_extract_string({{ column }}, '$.{{ keys | join(".") }}')
{%- endmacro %}

{% macro json_array_length(column, keys) -%}
    {{ return(adapter.dispatch('json_array_length', 'neon_elt')(column, keys)) }}
{%- endmacro %}

{% macro default__json_array_length(column, keys) -%}
    {%- set node = column ~ " #> '{" ~ keys | join(",") ~ "}'" -%}
    (case when jsonb_typeof({{ node }}) = 'array' then jsonb_array_length({{ node }}) end)
{%- endmacro %}

{% macro duckdb__json_array_length(column, keys) -%}
    {%- set path = "'$." ~ keys | join(".") ~ "'" -%}
    (case when json_type({{ column }}, {{ path }}) = 'ARRAY' then json_array_length({{ column }}, {{ path }}) end)
{%- endmacro %}
