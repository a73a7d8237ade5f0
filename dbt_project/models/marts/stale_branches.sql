-- The clean-up list: stale branches, biggest first, with what an admin needs to decide and act.
with

inventory as (

    select * from {{ ref('project_branch_inventory') }}

),

branch_costs as (

    select * from {{ ref('branch_costs') }}

),

stale as (

    select
        inventory.*,
        branch_costs.compute_unit_seconds_last_30_days,
        branch_costs.cu_hours_last_30_days,
        branch_costs.storage_gb_months_last_30_days,
        branch_costs.network_transfer_bytes_last_30_days,
        branch_costs.estimated_cost_last_30_days
    from inventory
    left join branch_costs
        on inventory.branch_id = branch_costs.branch_id
    where inventory.is_stale

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
        created_by,
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
        confirmed_at,
        compute_unit_seconds_last_30_days,
        cu_hours_last_30_days,
        storage_gb_months_last_30_days,
        network_transfer_bytes_last_30_days,
        estimated_cost_last_30_days
    from stale

)

select * from final
order by cleanup_rank
