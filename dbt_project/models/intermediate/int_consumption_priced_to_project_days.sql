-- Per project, UTC day and metric: what Neon reported in its raw unit, the same in the unit Neon
-- bills, what of it is billable after the free child branches (counted per project and hour:
-- from the hourly history wherever it holds the day's branch-hours, else from the day as one
-- bucket), and its cost at the rate of the period's plan. The organization's transfer allowance
-- is shared by its projects, so it is applied per month in monthly_bill, not here.
with

daily as (

    select * from {{ ref('stg_neon__consumption') }}

),

hourly as (

    select * from {{ ref('stg_neon__consumption_hourly') }}

),

metric_units as (

    select * from {{ ref('neon_metric_units') }}

),

rates as (

    {{ neon_billing_rates() }}

),

hourly_priced as (

    select
        hourly.*,
        rates.included_quantity,
        rates.included_per
    from hourly
    left join rates
        on {{ billing_rates_in_force('rates', 'hourly') }}

),

hourly_days as (

    -- each day's loaded hours, and their billable part: each hour less the plan's free branches
    select
        project_id,
        consumption_date,
        metric_name,
        min(org_id) as org_id,
        min(billing_period_id) as billing_period_id,
        min(billing_plan) as billing_plan,
        min(billing_period_start) as billing_period_start,
        min(billing_period_end) as billing_period_end,
        min(timeframe_start) as timeframe_start,
        max(timeframe_end) as timeframe_end,
        sum(metric_value) as metric_value,
        sum(
            case
                when included_per = 'project-hour'
                    then greatest(metric_value - included_quantity, 0)
                else metric_value
            end
        ) as billable_value
    from hourly_priced
    group by project_id, consumption_date, metric_name

),

days as (

    select
        coalesce(daily.project_id, hourly_days.project_id) as project_id,
        coalesce(daily.org_id, hourly_days.org_id) as org_id,
        coalesce(daily.consumption_date, hourly_days.consumption_date) as consumption_date,
        coalesce(daily.metric_name, hourly_days.metric_name) as metric_name,
        coalesce(daily.billing_period_id, hourly_days.billing_period_id) as billing_period_id,
        coalesce(daily.billing_plan, hourly_days.billing_plan) as billing_plan,
        coalesce(daily.billing_period_start, hourly_days.billing_period_start) as billing_period_start,
        coalesce(daily.billing_period_end, hourly_days.billing_period_end) as billing_period_end,
        coalesce(daily.timeframe_start, hourly_days.timeframe_start) as timeframe_start,
        coalesce(daily.timeframe_end, hourly_days.timeframe_end) as timeframe_end,
        coalesce(daily.metric_value, hourly_days.metric_value) as metric_value,
        -- the hours hold the whole day when they add up to it (an hour not loaded had nothing)
        coalesce(hourly_days.metric_value = daily.metric_value, daily.metric_value is null, false)
            as is_counted_by_the_hour,
        hourly_days.billable_value as hourly_billable_value
    from daily
    full outer join hourly_days
        on
            daily.project_id = hourly_days.project_id
            and daily.consumption_date = hourly_days.consumption_date
            and daily.metric_name = hourly_days.metric_name

),

billed as (

    select
        days.*,
        metric_units.raw_unit,
        metric_units.billing_unit,
        metric_units.raw_units_per_billing_unit,
        rates.included_quantity,
        rates.included_per,
        rates.rate_effective_from,
        {{ neon_price_override('days.metric_name') }} as override_rate_usd,
        {{ neon_rate('days.metric_name', 'rates.rate_usd') }} as rate_usd,
        case
            when rates.included_per <> 'project-hour' or rates.included_per is null then days.metric_value
            when days.is_counted_by_the_hour then days.hourly_billable_value
            -- the day as one bucket: its branch-hours less the free branches for each of its hours
            else greatest(
                    days.metric_value
                    - rates.included_quantity
                    * {{ dbt.datediff('days.timeframe_start', 'days.timeframe_end', 'hour') }},
                    0
                )
        end as billable_value
    from days
    inner join metric_units
        on days.metric_name = metric_units.metric_name
    left join rates
        on {{ billing_rates_in_force('rates', 'days') }}

),

final as (

    select
        project_id,
        org_id,
        consumption_date,
        metric_name,
        billing_period_id,
        billing_plan,
        billing_period_start,
        billing_period_end,
        timeframe_start,
        timeframe_end,
        metric_value,
        raw_unit,
        billable_value,
        is_counted_by_the_hour,
        billing_unit,
        raw_units_per_billing_unit,
        cast(metric_value as double precision) / raw_units_per_billing_unit as quantity,
        cast(billable_value as double precision) / raw_units_per_billing_unit as billable_quantity,
        included_quantity,
        included_per,
        rate_usd,
        case
            when override_rate_usd is not null then 'neon_prices'
            when rate_usd is not null then 'rate card'
        end as rate_source,
        case when override_rate_usd is null then rate_effective_from end as rate_effective_from,
        -- a usage nobody priced has no cost; nothing billable costs nothing, priced or not
        case
            when billable_value = 0 then 0
            else cast(billable_value as double precision) / raw_units_per_billing_unit * rate_usd
        end as gross_cost_usd
    from billed

)

select * from final
