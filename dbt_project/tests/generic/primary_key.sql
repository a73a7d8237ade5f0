{#-
    The key of `model`: unique and not_null in one test and one scan. On a column
    (`data_tests: [primary_key]`) the key is that column; on a model, pass `columns` for a key of
    several columns. Fails with one row per duplicated or incomplete key. One test instead of two
    halves the test nodes on the keys, and dbt pays a fixed cost per node on every run.
-#}
{% test primary_key(model, column_name=none, columns=none) -%}

with

violations as (

    select
        {{ (columns or [column_name]) | join(', ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ (columns or [column_name]) | join(', ') }}
    having count(*) > 1 or {{ (columns or [column_name]) | join(' is null or ') }} is null

)

select * from violations

{%- endtest %}
