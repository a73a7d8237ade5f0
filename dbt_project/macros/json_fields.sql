{#-
    A field of a JSON column by its path of keys (`['allowed_ips', 'protected_branches_only']`),
    the same on every adapter: `json_text` gives it as text (NULL when absent), `json_array_length`
    the length of the array there (NULL when absent or not an array; `[]` keys: the column itself),
    `json_array_field_list` one field of each object of an array column, sorted and comma-joined
    (NULL for an empty array). dlt loads JSON as DuckDB's JSON type and as PostgreSQL's jsonb.
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
    {%- set node = column ~ " #> '{" ~ keys | join(",") ~ "}'" if keys else column -%}
    (case when jsonb_typeof({{ node }}) = 'array' then jsonb_array_length({{ node }}) end)
{%- endmacro %}

{% macro duckdb__json_array_length(column, keys) -%}
    {%- set path = "'$." ~ keys | join(".") ~ "'" if keys else "'$'" -%}
    (case when json_type({{ column }}, {{ path }}) = 'ARRAY' then json_array_length({{ column }}, {{ path }}) end)
{%- endmacro %}

{% macro json_array_field_list(column, field) -%}
    {{ return(adapter.dispatch('json_array_field_list', 'neon_elt')(column, field)) }}
{%- endmacro %}

{% macro default__json_array_field_list(column, field) -%}
    (
        select string_agg(element ->> '{{ field }}', ', ' order by element ->> '{{ field }}')
        from jsonb_array_elements(case when jsonb_typeof({{ column }}) = 'array' then {{ column }} end) as element
    )
{%- endmacro %}

{% macro duckdb__json_array_field_list(column, field) -%}
    nullif(array_to_string(list_sort(json_extract_string({{ column }}, '$[*].{{ field }}')), ', '), '')
{%- endmacro %}
