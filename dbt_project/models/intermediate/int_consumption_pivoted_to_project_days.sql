-- Daily consumption turned from one row per metric into one row per project and day, with a column
-- per metric (NULL when Neon did not report the metric that day).
with

consumption as (

    select * from {{ ref('stg_neon__consumption') }}

),

pivoted as (

    select
        project_id,
        consumption_date,
        {% for metric in neon_consumption_metrics() %}
            cast(
                sum(case when metric_name = '{{ metric }}' then metric_value end) as {{ dbt.type_bigint() }}
            ) as {{ metric }},
        {% endfor %}
        count(*) as reported_metric_count
    from consumption
    group by project_id, consumption_date

)

select * from pivoted
