{#-
    `columns` together are a key of `model`: none of them is NULL, and no two rows share the same
    values in all of them (unique and not_null for a key of several columns, in one scan). Fails
    with one row per duplicated or incomplete combination.
-#}
{% test is_composite_key(model, columns) -%}

with

violations as (

    select
        {{ columns | join(', ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1 or {{ columns | join(' is null or ') }} is null

)

select * from violations

{%- endtest %}
