{#-
    The totals of `model` match aggregates of another model `to`, per value of `group_column`
    (without one, over the whole of each). `measures` maps a column of `model` (summed per group)
    to an aggregate over `to`, e.g. `branch_count: count(*)`. A group missing on one side counts
    as zero. Fails with one row per group whose totals differ (by more than `tolerance`, for sums
    of rounded amounts), with both sides of every measure.
-#}
{% test reconciles_with(model, to, measures, group_column=none, tolerance=0) -%}

with

model_totals as (

    select
        {{ group_column or "'all'" }} as group_key,
        {% for column in measures %}
            sum({{ column }}) as {{ column }},
        {% endfor %}
        count(*) as row_count
    from {{ model }}
    {% if group_column %}group by {{ group_column }}{% endif %}

),

compared_totals as (

    select
        {{ group_column or "'all'" }} as group_key,
        {% for column, aggregate in measures.items() %}
            {{ aggregate }} as {{ column }},
        {% endfor %}
        count(*) as row_count
    from {{ to }}
    {% if group_column %}group by {{ group_column }}{% endif %}

),

side_by_side as (

    select
        {% for column in measures %}
            coalesce(model_totals.{{ column }}, 0) as model_{{ column }},
            coalesce(compared_totals.{{ column }}, 0) as compared_{{ column }},
        {% endfor %}
        coalesce(model_totals.group_key, compared_totals.group_key) as group_key,
        model_totals.row_count as model_row_count,
        compared_totals.row_count as compared_row_count
    from model_totals
    full outer join compared_totals
        on model_totals.group_key = compared_totals.group_key

)

select * from side_by_side
where
    {% for column in measures %}
        abs(model_{{ column }} - compared_{{ column }}) > {{ tolerance }} or
    {% endfor %}
    false

{%- endtest %}
