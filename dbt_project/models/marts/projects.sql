with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

regions as (

    select * from {{ ref('stg_neon__regions') }}

),

project_rollup as (

    select * from {{ ref('int_projects_rollup') }}

),

consumption_days as (

    select * from {{ ref('int_consumption_pivoted_to_project_days') }}

),

priced_days as (

    select * from {{ ref('int_consumption_priced_to_project_days') }}

),

recent_consumption as (

    -- the 30 complete UTC days before the day the project was observed (the cost window)
    select
        consumption_days.project_id,
        {% for metric in neon_consumption_metrics() %}
            cast(sum(consumption_days.{{ metric }}) as {{ dbt.type_bigint() }}) as {{ metric }}_last_30_days,
        {% endfor %}
        count(*) as consumption_day_count
    from consumption_days
    inner join project_rollup
        on consumption_days.project_id = project_rollup.project_id
    where {{ in_cost_window('consumption_days.consumption_date', 'project_rollup.observed_at') }}
    group by consumption_days.project_id

),

recent_costs as (

    -- at the rate of each day's plan, free branches taken off, before the organization's transfer
    -- allowance (monthly_bill); NULL when some usage of the window has no rate
    select
        priced_days.project_id,
        {{ neon_exact_sum("case when priced_days.metric_name = 'compute_unit_seconds' then priced_days.quantity end") }}
            as cu_hours_last_30_days,
        case
            when count(case when priced_days.gross_cost_usd is null then 1 end) = 0
                then {{ neon_exact_sum('priced_days.gross_cost_usd') }}
        end as estimated_cost_last_30_days,
        {{ neon_exact_sum(
            "case when priced_days.metric_name = 'snapshot_storage_bytes_month' then priced_days.gross_cost_usd end"
        ) }}
            as snapshot_storage_cost_last_30_days
    from priced_days
    inner join project_rollup
        on priced_days.project_id = project_rollup.project_id
    where {{ in_cost_window('priced_days.consumption_date', 'project_rollup.observed_at') }}
    group by priced_days.project_id

),

snapshots as (

    -- Neon's snapshots as the last run listed them (not expired: Neon deletes those)
    select
        project_id,
        count(*) as snapshot_count,
        count(case when is_manual then 1 end) as manual_snapshot_count,
        sum(billed_size_bytes) as snapshot_billed_size_bytes,
        min(expires_at) as next_snapshot_expires_at
    from {{ ref('stg_neon__backup_snapshots') }}
    group by project_id

),

backup_schedules as (

    -- root branches read for their schedule that still exist
    select
        schedules.project_id,
        count(*) as root_branch_count,
        count(case when not schedules.has_backup_schedule then 1 end) as root_branches_without_backup_schedule
    from {{ ref('stg_neon__backup_schedules') }} as schedules
    inner join {{ ref('stg_neon__branches') }} as branches
        on schedules.branch_id = branches.branch_id
    group by schedules.project_id

),

latest_consumption as (

    select
        project_id,
        max(consumption_date) as last_consumption_date
    from consumption_days
    group by project_id

),

final as (

    select
        projects.project_id,
        projects.project_name,
        projects.org_id,
        projects.org_name,
        projects.region_id,
        regions.region_name,
        projects.pg_version,
        projects.creation_source,
        projects.created_at,
        cast(
            {{ dbt.datediff('projects.created_at', 'project_rollup.observed_at', 'day') }} as {{ dbt.type_bigint() }}
        ) as age_days,
        project_rollup.default_branch_id,
        project_rollup.default_branch_name,
        project_rollup.branch_count,
        project_rollup.stale_branch_count,
        project_rollup.endpoint_count,
        project_rollup.read_write_endpoint_count,
        project_rollup.read_only_endpoint_count,
        project_rollup.active_endpoint_count,
        project_rollup.idle_endpoint_count,
        project_rollup.database_count,
        project_rollup.role_count,
        project_rollup.logical_size_bytes,
        project_rollup.stale_logical_size_bytes,
        project_rollup.synthetic_storage_size_bytes,
        projects.branch_logical_size_limit_bytes,
        projects.history_retention_seconds,
        project_rollup.compute_time_seconds,
        project_rollup.active_time_seconds,
        project_rollup.cpu_used_seconds,
        project_rollup.written_data_bytes,
        project_rollup.data_transfer_bytes,
        project_rollup.last_compute_active_at,
        project_rollup.operation_count,
        project_rollup.failed_operation_count,
        project_rollup.last_operation_at,
        recent_consumption.compute_unit_seconds_last_30_days,
        recent_consumption.root_branch_bytes_month_last_30_days,
        recent_consumption.child_branch_bytes_month_last_30_days,
        recent_consumption.public_network_transfer_bytes_last_30_days,
        latest_consumption.last_consumption_date,
        project_rollup.observed_at,
        project_rollup.confirmed_at,
        project_rollup.refresh_due_at,
        cast({{ var('refresh_grace_hours') }} as {{ dbt.type_bigint() }}) as refresh_grace_hours,
        recent_consumption.instant_restore_bytes_month_last_30_days,
        recent_consumption.snapshot_storage_bytes_month_last_30_days,
        recent_consumption.private_network_transfer_bytes_last_30_days,
        recent_consumption.extra_branches_month_last_30_days,
        recent_costs.cu_hours_last_30_days,
        recent_costs.estimated_cost_last_30_days,
        cast(coalesce(snapshots.snapshot_count, 0) as {{ dbt.type_bigint() }}) as snapshot_count,
        cast(coalesce(snapshots.manual_snapshot_count, 0) as {{ dbt.type_bigint() }}) as manual_snapshot_count,
        cast(snapshots.snapshot_billed_size_bytes as {{ dbt.type_bigint() }}) as snapshot_billed_size_bytes,
        snapshots.next_snapshot_expires_at,
        recent_costs.snapshot_storage_cost_last_30_days,
        cast(backup_schedules.root_branches_without_backup_schedule as {{ dbt.type_bigint() }})
            as root_branches_without_backup_schedule
    from projects
    inner join project_rollup
        on projects.project_id = project_rollup.project_id
    left join regions
        on projects.region_id = regions.region_id
    left join recent_consumption
        on projects.project_id = recent_consumption.project_id
    left join latest_consumption
        on projects.project_id = latest_consumption.project_id
    left join recent_costs
        on projects.project_id = recent_costs.project_id
    left join snapshots
        on projects.project_id = snapshots.project_id
    left join backup_schedules
        on projects.project_id = backup_schedules.project_id

)

select * from final
