-- Per project and billing period: what the project's usage cost, by kind, with its share of the
-- organization's public transfer allowance taken off in proportion to its public transfer, so
-- that an organization's projects add up to its monthly_bill; and the change from the project's
-- previous period.
with

priced_days as (

    select * from {{ ref('int_consumption_priced_to_project_days') }}

),

bill as (

    select * from {{ ref('monthly_bill') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

project_periods as (

    select
        org_id,
        project_id,
        billing_period_start,
        max(billing_plan) as billing_plan,
        {% for metric in neon_consumption_metrics() %}
            {%- set quantity = "case when metric_name = '" ~ metric ~ "' then quantity else 0 end" %}
            {%- set billable = "case when metric_name = '" ~ metric ~ "' then billable_quantity else 0 end" %}
            {{ neon_exact_sum(quantity) }} as {{ metric }}_quantity,
            {{ neon_exact_sum(billable) }} as {{ metric }}_billable_quantity,
            -- one plan a period, so one rate: NULL when the metric was not priced
            max(case when metric_name = '{{ metric }}' then rate_usd end) as {{ metric }}_rate_usd,
        {% endfor %}
        max(timeframe_end) as reported_until
    from priced_days
    group by org_id, project_id, billing_period_start

),

period_costs as (

    select
        {% for metric in neon_consumption_metrics() %}
            -- a metric not used costs nothing, priced or not; used but not priced, NULL
            case
                when {{ metric }}_billable_quantity = 0 then 0
                else {{ metric }}_billable_quantity * {{ metric }}_rate_usd
            end as {{ metric }}_cost_usd,
        {% endfor %}
        *
    from project_periods

),

transfer_allowance as (

    -- the share of the organization's public transfer that its allowance leaves billable
    select
        org_id,
        billing_period_start,
        case when quantity = 0 then 0 else billable_quantity / quantity end as billable_share
    from bill
    where metric_name = 'public_network_transfer_bytes'

),

period_completeness as (

    select
        org_id,
        billing_period_start,
        bool_and(is_period_complete) as is_period_complete
    from bill
    group by org_id, billing_period_start

),

costed as (

    select
        period_costs.org_id,
        period_costs.project_id,
        projects.project_name,
        projects.region_id,
        cast(period_costs.billing_period_start as date) as billing_period_start,
        period_costs.billing_plan,
        period_completeness.is_period_complete,
        period_costs.compute_unit_seconds_quantity as cu_hours,
        period_costs.root_branch_bytes_month_quantity
        + period_costs.child_branch_bytes_month_quantity
        + period_costs.instant_restore_bytes_month_quantity
        + period_costs.snapshot_storage_bytes_month_quantity as storage_gb_months,
        period_costs.public_network_transfer_bytes_quantity
        + period_costs.private_network_transfer_bytes_quantity as network_transfer_gb,
        period_costs.extra_branches_month_quantity as extra_branch_months,
        period_costs.extra_branches_month_billable_quantity as billable_extra_branch_months,
        period_costs.compute_unit_seconds_cost_usd as compute_cost_usd,
        period_costs.root_branch_bytes_month_cost_usd
        + period_costs.child_branch_bytes_month_cost_usd
        + period_costs.instant_restore_bytes_month_cost_usd
        + period_costs.snapshot_storage_bytes_month_cost_usd as storage_cost_usd,
        period_costs.public_network_transfer_bytes_cost_usd
        * coalesce(transfer_allowance.billable_share, 1)
        + period_costs.private_network_transfer_bytes_cost_usd as transfer_cost_usd,
        period_costs.extra_branches_month_cost_usd as extra_branches_cost_usd,
        projects.project_id is null as is_deleted_project,
        period_costs.reported_until
    from period_costs
    left join transfer_allowance
        on
            period_costs.org_id = transfer_allowance.org_id
            and cast(period_costs.billing_period_start as date) = transfer_allowance.billing_period_start
    left join period_completeness
        on
            period_costs.org_id = period_completeness.org_id
            and cast(period_costs.billing_period_start as date) = period_completeness.billing_period_start
    -- consumption outlives a deleted project: keep its periods, without the project's details
    left join projects
        on period_costs.project_id = projects.project_id

),

totalled as (

    select
        *,
        compute_cost_usd + storage_cost_usd + transfer_cost_usd + extra_branches_cost_usd as cost_usd,
        -- the kinds with a rate: the whole cost where every kind has one
        coalesce(compute_cost_usd, 0) + coalesce(storage_cost_usd, 0) + coalesce(transfer_cost_usd, 0)
        + coalesce(extra_branches_cost_usd, 0) as priced_cost_usd
    from costed

),

final as (

    select
        org_id,
        project_id,
        project_name,
        region_id,
        billing_period_start,
        billing_plan,
        is_period_complete,
        {{ neon_amount('cu_hours') }} as cu_hours,
        {{ neon_amount('storage_gb_months') }} as storage_gb_months,
        {{ neon_amount('network_transfer_gb') }} as network_transfer_gb,
        {{ neon_amount('extra_branch_months') }} as extra_branch_months,
        {{ neon_amount('billable_extra_branch_months') }} as billable_extra_branch_months,
        {{ neon_amount('compute_cost_usd') }} as compute_cost_usd,
        {{ neon_amount('storage_cost_usd') }} as storage_cost_usd,
        {{ neon_amount('transfer_cost_usd') }} as transfer_cost_usd,
        {{ neon_amount('extra_branches_cost_usd') }} as extra_branches_cost_usd,
        {{ neon_amount('cost_usd') }} as cost_usd,
        {{ neon_amount('priced_cost_usd') }} as priced_cost_usd,
        cost_usd / nullif({{ neon_exact_sum('cost_usd', over='partition by org_id, billing_period_start') }}, 0)
            as share_of_org_cost,
        {{ neon_amount('lag(cost_usd) over (partition by project_id order by billing_period_start)') }}
            as previous_period_cost_usd,
        {{ neon_amount('cost_usd - lag(cost_usd) over (partition by project_id order by billing_period_start)') }}
            as cost_change_usd,
        is_deleted_project,
        reported_until
    from totalled

)

select * from final
