{#-
    `model` has exactly one row: the key of a one-row model (an account's totals) is no column at
    all, and this is its test of unique and not null. Fails with the row count when it is not 1.
-#}
{% test one_row(model) -%}

with

counted as (

    select count(*) as row_count
    from {{ model }}

)

select * from counted
where row_count != 1

{%- endtest %}
