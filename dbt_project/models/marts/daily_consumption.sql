with

consumption as (

    select * from {{ ref('stg_neon__consumption') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

metric_units as (

    select * from {{ ref('neon_metric_units') }}

),

final as (

    select
        consumption.project_id,
        projects.project_name,
        consumption.org_id,
        projects.region_id,
        consumption.consumption_date,
        consumption.metric_name,
        consumption.metric_value,
        metric_units.raw_unit as metric_unit,
        cast(consumption.metric_value as double precision) / metric_units.raw_units_per_billing_unit as quantity,
        metric_units.billing_unit,
        consumption.billing_period_id,
        consumption.billing_plan,
        consumption.billing_period_start,
        consumption.billing_period_end,
        projects.project_id is null as is_deleted_project
    from consumption
    -- consumption history outlives a deleted project: keep its days, without the project's details
    left join projects
        on consumption.project_id = projects.project_id
    left join metric_units
        on consumption.metric_name = metric_units.metric_name

)

select * from final
