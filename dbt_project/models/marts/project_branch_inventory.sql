with

branches as (

    select * from {{ ref('stg_neon__branches') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

lineage as (

    select * from {{ ref('int_branches_lineage') }}

),

branch_rollup as (

    select * from {{ ref('int_branches_rollup') }}

),

backup_schedules as (

    select * from {{ ref('stg_neon__backup_schedules') }}

),

branch_readings as (

    select * from {{ ref('stg_neon__branch_latest_readings') }}

),

final as (

    select
        branches.branch_id,
        branches.project_id,
        projects.project_name,
        projects.org_id,
        projects.org_name,
        projects.region_id,
        projects.pg_version,
        branches.branch_name,
        branches.branch_state,
        branches.parent_branch_id,
        lineage.parent_branch_name,
        lineage.root_branch_id,
        lineage.root_branch_name,
        lineage.branch_depth,
        lineage.lineage_path,
        lineage.child_branch_count,
        branches.is_default,
        branches.is_protected,
        branches.created_by_name as created_by,
        branch_rollup.endpoint_count,
        branch_rollup.read_write_endpoint_count,
        branch_rollup.read_only_endpoint_count,
        branch_rollup.active_endpoint_count,
        branch_rollup.idle_endpoint_count,
        branch_rollup.max_autoscaling_cu,
        branch_rollup.endpoint_ids,
        branch_rollup.database_count,
        branch_rollup.role_count,
        branch_rollup.logical_size_bytes,
        branch_rollup.compute_time_seconds,
        branch_rollup.active_time_seconds,
        branch_rollup.written_data_bytes,
        branch_rollup.data_transfer_bytes,
        branches.created_at,
        branches.expires_at,
        branch_rollup.last_compute_active_at,
        branch_rollup.last_activity_at,
        branch_rollup.observed_at,
        branch_rollup.confirmed_at,
        branch_rollup.refresh_due_at,
        branch_rollup.age_days,
        branch_rollup.days_since_activity,
        branch_rollup.is_stale,
        branch_rollup.stale_after_days,
        backup_schedules.has_backup_schedule,
        backup_schedules.backup_frequencies,
        branch_readings.restricted_action_names
    from branches
    -- a branch whose project is gone is not part of the current estate
    inner join projects
        on branches.project_id = projects.project_id
    left join lineage
        on branches.branch_id = lineage.branch_id
    left join branch_rollup
        on branches.branch_id = branch_rollup.branch_id
    left join backup_schedules
        on branches.branch_id = backup_schedules.branch_id
    left join branch_readings
        on branches.branch_id = branch_readings.branch_id

)

select * from final
