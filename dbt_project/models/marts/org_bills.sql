-- Per organization and billing period: the bill's total, summed once here from monthly_bill's
-- lines, for the report and the summary `make demo` prints.
with

bill as (

    select * from {{ ref('monthly_bill') }}

),

periods as (

    select
        org_id,
        billing_period_start,
        max(org_name) as org_name,
        max(billing_period_end) as billing_period_end,
        max(billing_plan) as billing_plan,
        bool_and(is_period_complete) as is_period_complete,
        max(reported_until) as reported_until,
        max(rate_effective_from) as rate_effective_from,
        count(*) as line_count,
        count(*) - count(cost_usd) as unpriced_line_count,
        count(*) - count(projected_cost_usd) as unpriced_projected_line_count,
        coalesce(sum(cost_usd), 0) as priced_cost_usd,
        coalesce(sum(projected_cost_usd), 0) as priced_projected_cost_usd
    from bill
    group by org_id, billing_period_start

),

final as (

    select
        org_id,
        org_name,
        billing_period_start,
        billing_period_end,
        billing_plan,
        is_period_complete,
        billing_period_end is null as is_running,
        reported_until,
        rate_effective_from,
        line_count,
        unpriced_line_count,
        priced_cost_usd,
        case when unpriced_line_count = 0 then priced_cost_usd end as cost_usd,
        priced_projected_cost_usd,
        unpriced_projected_line_count,
        case when unpriced_projected_line_count = 0 then priced_projected_cost_usd end as projected_cost_usd,
        is_period_complete and row_number() over (
            partition by org_id, is_period_complete order by billing_period_start desc
        ) = 1 as is_last_complete_period,
        not is_period_complete and row_number() over (
            partition by org_id, is_period_complete order by billing_period_start desc
        ) = 1 as is_last_incomplete_period
    from periods

)

select * from final
