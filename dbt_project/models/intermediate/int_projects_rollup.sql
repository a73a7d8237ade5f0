-- Per current project: branches, computes, databases, roles, storage and activity summed over its
-- branches, its latest usage counters, and its operations.
with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

branches as (

    select * from {{ ref('stg_neon__branches') }}

),

branch_rollup as (

    select * from {{ ref('int_branches_rollup') }}

),

project_readings as (

    select * from {{ ref('stg_neon__project_latest_readings') }}

),

operations as (

    select * from {{ ref('stg_neon__operations') }}

),

per_project as (

    select
        branch_rollup.project_id,
        count(*) as branch_count,
        count(case when branch_rollup.is_stale then 1 end) as stale_branch_count,
        count(case when branches.is_protected then 1 end) as protected_branch_count,
        max(case when branches.is_default then branches.branch_id end) as default_branch_id,
        max(case when branches.is_default then branches.branch_name end) as default_branch_name,
        cast(sum(branch_rollup.endpoint_count) as {{ dbt.type_bigint() }}) as endpoint_count,
        cast(sum(branch_rollup.read_write_endpoint_count) as {{ dbt.type_bigint() }}) as read_write_endpoint_count,
        cast(sum(branch_rollup.read_only_endpoint_count) as {{ dbt.type_bigint() }}) as read_only_endpoint_count,
        cast(sum(branch_rollup.active_endpoint_count) as {{ dbt.type_bigint() }}) as active_endpoint_count,
        cast(sum(branch_rollup.idle_endpoint_count) as {{ dbt.type_bigint() }}) as idle_endpoint_count,
        cast(sum(branch_rollup.database_count) as {{ dbt.type_bigint() }}) as database_count,
        cast(sum(branch_rollup.role_count) as {{ dbt.type_bigint() }}) as role_count,
        cast(sum(branch_rollup.logical_size_bytes) as {{ dbt.type_bigint() }}) as logical_size_bytes,
        cast(
            sum(case when branch_rollup.is_stale then branch_rollup.logical_size_bytes end)
            as {{ dbt.type_bigint() }}
        ) as stale_logical_size_bytes,
        cast(sum(branch_rollup.compute_time_seconds) as {{ dbt.type_bigint() }}) as compute_time_seconds,
        cast(sum(branch_rollup.written_data_bytes) as {{ dbt.type_bigint() }}) as written_data_bytes,
        cast(sum(branch_rollup.data_transfer_bytes) as {{ dbt.type_bigint() }}) as data_transfer_bytes,
        max(branch_rollup.last_compute_active_at) as last_compute_active_at,
        max(branch_rollup.observed_at) as observed_at,
        min(branch_rollup.confirmed_at) as confirmed_at,
        min(branch_rollup.refresh_due_at) as refresh_due_at
    from branch_rollup
    inner join branches
        on branch_rollup.branch_id = branches.branch_id
    group by branch_rollup.project_id

),

per_project_operations as (

    select
        project_id,
        count(*) as operation_count,
        count(case when operation_status in ('failed', 'error') then 1 end) as failed_operation_count,
        max(created_at) as last_operation_at
    from operations
    group by project_id

),

final as (

    select
        projects.project_id,
        projects.region_id,
        projects.pg_version,
        per_project.default_branch_id,
        per_project.default_branch_name,
        coalesce(per_project.branch_count, 0) as branch_count,
        coalesce(per_project.stale_branch_count, 0) as stale_branch_count,
        coalesce(per_project.protected_branch_count, 0) as protected_branch_count,
        coalesce(per_project.endpoint_count, 0) as endpoint_count,
        coalesce(per_project.read_write_endpoint_count, 0) as read_write_endpoint_count,
        coalesce(per_project.read_only_endpoint_count, 0) as read_only_endpoint_count,
        coalesce(per_project.active_endpoint_count, 0) as active_endpoint_count,
        coalesce(per_project.idle_endpoint_count, 0) as idle_endpoint_count,
        coalesce(per_project.database_count, 0) as database_count,
        coalesce(per_project.role_count, 0) as role_count,
        coalesce(per_project.logical_size_bytes, 0) as logical_size_bytes,
        coalesce(per_project.stale_logical_size_bytes, 0) as stale_logical_size_bytes,
        project_readings.synthetic_storage_size_bytes,
        coalesce(per_project.compute_time_seconds, 0) as compute_time_seconds,
        project_readings.active_time_seconds,
        project_readings.cpu_used_seconds,
        coalesce(per_project.written_data_bytes, 0) as written_data_bytes,
        coalesce(per_project.data_transfer_bytes, 0) as data_transfer_bytes,
        coalesce(project_readings.compute_last_active_at, per_project.last_compute_active_at)
            as last_compute_active_at,
        coalesce(per_project_operations.operation_count, 0) as operation_count,
        coalesce(per_project_operations.failed_operation_count, 0) as failed_operation_count,
        per_project_operations.last_operation_at,
        coalesce(project_readings.read_at, per_project.observed_at) as observed_at,
        per_project.confirmed_at,
        per_project.refresh_due_at
    from projects
    left join per_project
        on projects.project_id = per_project.project_id
    left join project_readings
        on projects.project_id = project_readings.project_id
    left join per_project_operations
        on projects.project_id = per_project_operations.project_id

)

select * from final
