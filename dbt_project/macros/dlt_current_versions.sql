{#-
    The current version of each record of a table dlt loads with scd2 history: the one whose
    `_dlt_valid_to` is NULL, and should an `id` ever have two, the one loaded last.
-#}
{% macro dlt_current_versions(relation) -%}
    select *
    from (
        select
            *,
            row_number() over (partition by id order by _dlt_valid_from desc) as recency_rank
        from {{ relation }}
        where _dlt_valid_to is null
    ) as ranked
    where recency_rank = 1
{%- endmacro %}
