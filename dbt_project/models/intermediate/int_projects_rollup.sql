-- Per project: branches, computes, databases, roles, storage and activity, summed over its branches.
with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

branch_rollup as (

    select * from {{ ref('int_branches_rollup') }}

),

project_snapshots as (

    select * from {{ ref('stg_neon__project_snapshots') }}

),

per_project as (

    select
        project_id,
        count(*) as branch_count,
        cast(sum(endpoint_count) as bigint) as endpoint_count,
        cast(sum(read_write_endpoint_count) as bigint) as read_write_endpoint_count,
        cast(sum(read_only_endpoint_count) as bigint) as read_only_endpoint_count,
        cast(sum(active_endpoint_count) as bigint) as active_endpoint_count,
        cast(sum(idle_endpoint_count) as bigint) as idle_endpoint_count,
        cast(sum(database_count) as bigint) as database_count,
        cast(sum(role_count) as bigint) as role_count,
        cast(sum(logical_size_bytes) as bigint) as logical_size_bytes,
        cast(sum(compute_time_seconds) as bigint) as compute_time_seconds,
        cast(sum(written_data_bytes) as bigint) as written_data_bytes,
        cast(sum(data_transfer_bytes) as bigint) as data_transfer_bytes,
        max(last_compute_active_at) as last_compute_active_at
    from branch_rollup
    group by project_id

),

final as (

    select
        projects.project_id,
        projects.region_id,
        projects.pg_version,
        coalesce(per_project.branch_count, 0) as branch_count,
        coalesce(per_project.endpoint_count, 0) as endpoint_count,
        coalesce(per_project.read_write_endpoint_count, 0) as read_write_endpoint_count,
        coalesce(per_project.read_only_endpoint_count, 0) as read_only_endpoint_count,
        coalesce(per_project.active_endpoint_count, 0) as active_endpoint_count,
        coalesce(per_project.idle_endpoint_count, 0) as idle_endpoint_count,
        coalesce(per_project.database_count, 0) as database_count,
        coalesce(per_project.role_count, 0) as role_count,
        coalesce(per_project.logical_size_bytes, 0) as logical_size_bytes,
        coalesce(per_project.compute_time_seconds, 0) as compute_time_seconds,
        coalesce(per_project.written_data_bytes, 0) as written_data_bytes,
        coalesce(per_project.data_transfer_bytes, 0) as data_transfer_bytes,
        project_snapshots.synthetic_storage_size_bytes,
        project_snapshots.active_time_seconds,
        project_snapshots.cpu_used_seconds,
        coalesce(project_snapshots.compute_last_active_at, per_project.last_compute_active_at)
            as last_compute_active_at
    from projects
    left join per_project
        on projects.project_id = per_project.project_id
    left join project_snapshots
        on projects.project_id = project_snapshots.project_id

)

select * from final
