-- Per organization, billing period and metric: Neon's bill as its "Usage and cost calculations"
-- page computes it. Usage summed over the organization's projects in Neon's raw unit, converted
-- once (neon_metric_units), the plan's allowances taken off (free branches per project and hour
-- before the sum, the public transfer allowance per organization and month after it), priced at
-- the rate card's rate for the period's plan or the user's (dbt var neon_prices).
with

priced_days as (

    select * from {{ ref('int_consumption_priced_to_project_days') }}

),

organizations as (

    select * from {{ ref('stg_neon__organizations') }}

),

organization_history as (

    -- the first day the warehouse holds for each organization
    select
        org_id,
        min(consumption_date) as first_loaded_date
    from priced_days
    group by org_id

),

period_totals as (

    select
        org_id,
        billing_period_start,
        metric_name,
        max(billing_period_id) as billing_period_id,
        max(billing_plan) as billing_plan,
        max(billing_period_end) as billing_period_end,
        max(raw_unit) as raw_unit,
        max(billing_unit) as billing_unit,
        max(raw_units_per_billing_unit) as raw_units_per_billing_unit,
        max(included_quantity) as included_quantity,
        max(included_per) as included_per,
        max(rate_usd) as rate_usd,
        max(rate_source) as rate_source,
        max(rate_effective_from) as rate_effective_from,
        sum(metric_value) as raw_quantity,
        sum(billable_value) as billable_raw_quantity,
        count(distinct project_id) as project_count,
        min(timeframe_start) as reported_from,
        max(timeframe_end) as reported_until
    from priced_days
    group by org_id, billing_period_start, metric_name

),

quantities as (

    select
        period_totals.*,
        {{ dbt.dateadd('month', 1, 'period_totals.billing_period_start') }} as period_ends_at,
        cast(period_totals.raw_quantity as double precision) / period_totals.raw_units_per_billing_unit as quantity,
        case
            when period_totals.included_per = 'organization-month'
                then greatest(
                        cast(period_totals.raw_quantity as double precision) / period_totals.raw_units_per_billing_unit
                        - period_totals.included_quantity,
                        0
                    )
            else cast(period_totals.billable_raw_quantity as double precision)
                / period_totals.raw_units_per_billing_unit
        end as billable_quantity,
        -- complete: Neon closed the period, and the warehouse holds it from its first day (or from
        -- the organization's creation) to its last
        period_totals.billing_period_end is not null
        and period_totals.reported_until >= period_totals.billing_period_end
        and organization_history.first_loaded_date <= greatest(
            cast(period_totals.billing_period_start as date),
            coalesce(cast(organizations.created_at as date), cast(period_totals.billing_period_start as date))
        ) as is_period_complete,
        -- an organization the key no longer sees keeps its history, named by its id
        coalesce(organizations.org_name, period_totals.org_id) as org_name
    from period_totals
    inner join organization_history
        on period_totals.org_id = organization_history.org_id
    left join organizations
        on period_totals.org_id = organizations.org_id

),

projected as (

    select
        *,
        -- the hours of the period the figures cover, and the period's own hours
        cast({{ dbt.datediff('reported_from', 'reported_until', 'hour') }} as double precision) as reported_hours,
        cast({{ dbt.datediff('billing_period_start', 'period_ends_at', 'hour') }} as double precision) as period_hours
    from quantities

),

costed as (

    select
        *,
        case
            when is_period_complete or reported_hours <= 0 then quantity
            else quantity * period_hours / reported_hours
        end as projected_quantity,
        case
            when is_period_complete or reported_hours <= 0 then billable_quantity
            when included_per = 'organization-month'
                then greatest(quantity * period_hours / reported_hours - included_quantity, 0)
            else billable_quantity * period_hours / reported_hours
        end as projected_billable_quantity
    from projected

),

final as (

    select
        org_id,
        org_name,
        billing_period_id,
        cast(billing_period_start as date) as billing_period_start,
        cast(billing_period_end as date) as billing_period_end,
        billing_plan,
        metric_name,
        cast(raw_quantity as double precision) as raw_quantity,
        raw_unit,
        {{ neon_amount('quantity') }} as quantity,
        billing_unit as unit,
        {{ neon_amount('quantity - billable_quantity') }} as allowance_quantity,
        included_quantity,
        included_per,
        {{ neon_amount('billable_quantity') }} as billable_quantity,
        {{ neon_amount('rate_usd') }} as rate_usd,
        rate_source,
        rate_effective_from,
        {{ neon_amount('case when billable_quantity = 0 then 0 else billable_quantity * rate_usd end') }}
            as cost_usd,
        project_count,
        is_period_complete,
        reported_until,
        {{ neon_amount('projected_quantity') }} as projected_quantity,
        {{ neon_amount('projected_billable_quantity') }} as projected_billable_quantity,
        {{ neon_amount(
            'case when projected_billable_quantity = 0 then 0 else projected_billable_quantity * rate_usd end'
        ) }} as projected_cost_usd
    from costed

)

select * from final
