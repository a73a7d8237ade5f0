{#-
    Every value of `column_name` (a group) has exactly one row that meets `condition`.
    Example: one default branch per project (`column_name: project_id`, `condition: is_default`).
    Fails with one row per group that has none or several.
-#}
{% test exactly_one_per_group(model, column_name, condition) -%}

with

grouped as (

    select
        {{ column_name }} as group_key,
        count(case when {{ condition }} then 1 end) as matching_row_count
    from {{ model }}
    group by {{ column_name }}

)

select * from grouped
where matching_row_count != 1

{%- endtest %}
