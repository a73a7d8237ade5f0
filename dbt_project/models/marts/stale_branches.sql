-- The clean-up list: stale branches, biggest first, with what an admin needs to decide and act.
with

inventory as (

    select * from {{ ref('project_branch_inventory') }}

),

stale as (

    select * from inventory
    where is_stale

),

final as (

    select
        cast(
            row_number() over (order by logical_size_bytes desc nulls last, branch_id asc) as {{ dbt.type_bigint() }}
        ) as cleanup_rank,
        branch_id,
        branch_name,
        project_id,
        project_name,
        org_name,
        region_id,
        lineage_path,
        parent_branch_name,
        child_branch_count,
        branch_state,
        is_protected,
        created_at,
        age_days,
        last_compute_active_at,
        last_activity_at,
        days_since_activity,
        logical_size_bytes,
        cast(
            sum(coalesce(logical_size_bytes, 0)) over (
                order by logical_size_bytes desc nulls last, branch_id asc
                rows between unbounded preceding and current row
            ) as {{ dbt.type_bigint() }}
        ) as cumulative_logical_size_bytes,
        endpoint_count,
        endpoint_ids,
        max_autoscaling_cu,
        database_count,
        expires_at,
        observed_at,
        confirmed_at
    from stale

)

select * from final
order by cleanup_rank
