-- Per current branch: what Neon's branch consumption says it used over the 30 complete UTC days
-- before the run's day, in Neon's raw units and in the units Neon bills, and what that costs at
-- the rate of each day's plan (the rate card, or the user's prices: dbt var neon_prices), before
-- the organization's allowances.
with

inventory as (

    select * from {{ ref('project_branch_inventory') }}

),

branch_consumption as (

    select * from {{ ref('stg_neon__branch_consumption') }}

),

metric_units as (

    select * from {{ ref('neon_metric_units') }}

),

rates as (

    {{ neon_billing_rates() }}

),

priced_days as (

    select
        inventory.branch_id,
        branch_consumption.consumption_date,
        branch_consumption.metric_name,
        branch_consumption.metric_value,
        case
            when branch_consumption.metric_name = 'compute_unit_seconds' then 'compute'
            when
                branch_consumption.metric_name in ('public_network_transfer_bytes', 'private_network_transfer_bytes')
                then 'transfer'
            else 'storage'
        end as cost_kind,
        cast(branch_consumption.metric_value as double precision) / metric_units.raw_units_per_billing_unit
            as quantity,
        case
            when branch_consumption.metric_value = 0 then 0
            else
                cast(branch_consumption.metric_value as double precision) / metric_units.raw_units_per_billing_unit
                * {{ neon_rate('branch_consumption.metric_name', 'rates.rate_usd') }}
        end as cost_usd
    from inventory
    inner join branch_consumption
        on inventory.branch_id = branch_consumption.branch_id
    inner join metric_units
        on branch_consumption.metric_name = metric_units.metric_name
    left join rates
        on {{ billing_rates_in_force('rates', 'branch_consumption') }}
    where {{ in_cost_window('branch_consumption.consumption_date', 'inventory.observed_at') }}

),

windowed as (

    select
        branch_id,
        {% for metric in neon_branch_consumption_metrics() %}
            cast(
                sum(case when metric_name = '{{ metric }}' then metric_value end) as {{ dbt.type_bigint() }}
            ) as {{ metric }}_last_30_days,
        {% endfor %}
        {% for kind in ['compute', 'storage', 'transfer'] %}
            {{ neon_exact_sum("case when cost_kind = '" ~ kind ~ "' then quantity end") }} as {{ kind }}_quantity,
            -- NULL when a day's usage of the kind has no rate: never a partial sum
            case
                when count(case when cost_kind = '{{ kind }}' and cost_usd is null then 1 end) = 0
                    then coalesce({{ neon_exact_sum("case when cost_kind = '" ~ kind ~ "' then cost_usd end") }}, 0)
            end as {{ kind }}_cost_usd,
        {% endfor %}
        count(distinct consumption_date) as consumption_day_count
    from priced_days
    group by branch_id

),

final as (

    select
        inventory.branch_id,
        inventory.branch_name,
        inventory.project_id,
        inventory.project_name,
        inventory.org_id,
        inventory.org_name,
        inventory.created_by,
        inventory.is_default,
        inventory.is_stale,
        {{ cost_window_start('inventory.observed_at') }} as window_start_date,
        {{ cost_window_end('inventory.observed_at') }} as window_end_date,
        coalesce(windowed.consumption_day_count, 0) as consumption_day_count,
        windowed.compute_unit_seconds_last_30_days,
        windowed.compute_quantity as cu_hours_last_30_days,
        windowed.root_branch_bytes_month_last_30_days,
        windowed.child_branch_bytes_month_last_30_days,
        windowed.instant_restore_bytes_month_last_30_days,
        windowed.root_branch_bytes_month_last_30_days
        + windowed.child_branch_bytes_month_last_30_days
        + windowed.instant_restore_bytes_month_last_30_days as storage_byte_hours_last_30_days,
        windowed.storage_quantity as storage_gb_months_last_30_days,
        windowed.public_network_transfer_bytes_last_30_days,
        windowed.private_network_transfer_bytes_last_30_days,
        windowed.public_network_transfer_bytes_last_30_days
        + windowed.private_network_transfer_bytes_last_30_days as network_transfer_bytes_last_30_days,
        windowed.compute_cost_usd as estimated_compute_cost_last_30_days,
        windowed.storage_cost_usd as estimated_storage_cost_last_30_days,
        windowed.transfer_cost_usd as estimated_transfer_cost_last_30_days,
        windowed.compute_cost_usd
        + windowed.storage_cost_usd
        + windowed.transfer_cost_usd as estimated_cost_last_30_days,
        inventory.observed_at
    from inventory
    left join windowed
        on inventory.branch_id = windowed.branch_id

)

select * from final
