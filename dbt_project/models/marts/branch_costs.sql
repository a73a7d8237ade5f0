-- Per current branch: what Neon's branch consumption says it used over the 30 complete UTC days
-- before the run's day, and what that costs at the prices the user set (dbt var neon_prices).
with

inventory as (

    select * from {{ ref('project_branch_inventory') }}

),

branch_consumption as (

    select * from {{ ref('stg_neon__branch_consumption') }}

),

windowed as (

    select
        inventory.branch_id,
        {% for metric in neon_branch_consumption_metrics() %}
            cast(
                sum(case when branch_consumption.metric_name = '{{ metric }}' then branch_consumption.metric_value end)
                as {{ dbt.type_bigint() }}
            ) as {{ metric }}_last_30_days,
        {% endfor %}
        count(distinct branch_consumption.consumption_date) as consumption_day_count
    from inventory
    inner join branch_consumption
        on inventory.branch_id = branch_consumption.branch_id
    where {{ in_cost_window('branch_consumption.consumption_date', 'inventory.observed_at') }}
    group by inventory.branch_id

),

usage as (

    select
        inventory.branch_id,
        inventory.branch_name,
        inventory.project_id,
        inventory.project_name,
        inventory.org_id,
        inventory.org_name,
        inventory.is_default,
        inventory.is_stale,
        {{ cost_window_start('inventory.observed_at') }} as window_start_date,
        {{ cost_window_end('inventory.observed_at') }} as window_end_date,
        coalesce(windowed.consumption_day_count, 0) as consumption_day_count,
        windowed.compute_unit_seconds_last_30_days,
        windowed.root_branch_bytes_month_last_30_days,
        windowed.child_branch_bytes_month_last_30_days,
        windowed.instant_restore_bytes_month_last_30_days,
        windowed.public_network_transfer_bytes_last_30_days,
        windowed.private_network_transfer_bytes_last_30_days,
        inventory.observed_at
    from inventory
    left join windowed
        on inventory.branch_id = windowed.branch_id

),

costed as (

    select
        branch_id,
        branch_name,
        project_id,
        project_name,
        org_id,
        org_name,
        is_default,
        is_stale,
        window_start_date,
        window_end_date,
        consumption_day_count,
        compute_unit_seconds_last_30_days,
        cast(compute_unit_seconds_last_30_days as double precision) / 3600 as cu_hours_last_30_days,
        root_branch_bytes_month_last_30_days,
        child_branch_bytes_month_last_30_days,
        instant_restore_bytes_month_last_30_days,
        root_branch_bytes_month_last_30_days
        + child_branch_bytes_month_last_30_days
        + instant_restore_bytes_month_last_30_days as storage_bytes_month_last_30_days,
        public_network_transfer_bytes_last_30_days,
        private_network_transfer_bytes_last_30_days,
        public_network_transfer_bytes_last_30_days
        + private_network_transfer_bytes_last_30_days as network_transfer_bytes_last_30_days,
        {{ neon_cost('compute_unit_seconds', 'compute_unit_seconds_last_30_days') }}
            as estimated_compute_cost_last_30_days,
        {{ neon_cost('root_branch_bytes_month', 'root_branch_bytes_month_last_30_days') }}
        + {{ neon_cost('child_branch_bytes_month', 'child_branch_bytes_month_last_30_days') }}
        + {{ neon_cost('instant_restore_bytes_month', 'instant_restore_bytes_month_last_30_days') }}
            as estimated_storage_cost_last_30_days,
        {{ neon_cost('public_network_transfer_bytes', 'public_network_transfer_bytes_last_30_days') }}
        + {{ neon_cost('private_network_transfer_bytes', 'private_network_transfer_bytes_last_30_days') }}
            as estimated_transfer_cost_last_30_days,
        observed_at
    from usage

),

final as (

    select
        *,
        -- NULL unless every price it needs is set
        estimated_compute_cost_last_30_days
        + estimated_storage_cost_last_30_days
        + estimated_transfer_cost_last_30_days as estimated_cost_last_30_days
    from costed

)

select * from final
