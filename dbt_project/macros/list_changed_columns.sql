{#-
    The names of the `columns` whose value differs between two rows of an scd2 history, joined with
    ', ' in the order given; NULL when none differs. `current` and `previous` are the aliases of the
    two rows. concat_ws skips NULLs on DuckDB and Postgres alike.
-#}
{% macro list_changed_columns(columns, current, previous) -%}
    {%- set flags = [] -%}
    {%- for column in columns -%}
        {%- do flags.append(
            "case when " ~ current ~ "." ~ column ~ " is distinct from " ~ previous ~ "." ~ column
            ~ " then '" ~ column ~ "' end"
        ) -%}
    {%- endfor -%}
    nullif(concat_ws(', ', {{ flags | join(', ') }}), '')
{%- endmacro %}
