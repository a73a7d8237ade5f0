-- Per current compute: the settings and habits that cost money (it never suspends, its minimum
-- size is above the smallest, it runs on a stale branch, it is a read replica nobody uses), each
-- with its reason, and the compute's CU-hours over the cost window where they can be told apart.
with

endpoints as (

    select * from {{ ref('stg_neon__endpoints') }}

),

endpoint_readings as (

    select * from {{ ref('stg_neon__endpoint_latest_readings') }}

),

inventory as (

    select * from {{ ref('project_branch_inventory') }}

),

branch_costs as (

    select * from {{ ref('branch_costs') }}

),

computes as (

    select
        endpoints.endpoint_id,
        endpoints.endpoint_name,
        endpoints.endpoint_type,
        endpoints.project_id,
        inventory.project_name,
        endpoints.branch_id,
        inventory.branch_name,
        inventory.is_stale as is_stale_branch,
        inventory.days_since_activity as branch_days_since_activity,
        endpoint_readings.endpoint_state,
        endpoints.is_disabled,
        endpoints.suspend_timeout_seconds,
        endpoints.autoscaling_limit_min_cu,
        endpoints.autoscaling_limit_max_cu,
        endpoint_readings.last_active_at,
        endpoints.created_at,
        cast(
            {{ dbt.datediff(
                'coalesce(endpoint_readings.last_active_at, endpoints.created_at)', 'inventory.observed_at', 'day'
            ) }} as {{ dbt.type_bigint() }}
        ) as days_since_active,
        -- whether it can have used compute in the window: running, or active since it began
        coalesce(
            endpoint_readings.endpoint_state = 'active'
            or endpoint_readings.last_active_at >= cast(branch_costs.window_start_date as {{ dbt.type_timestamp() }}),
            false
        ) as was_active_in_window,
        branch_costs.cu_hours_last_30_days as branch_cu_hours_last_30_days,
        inventory.observed_at
    from endpoints
    inner join inventory
        on endpoints.branch_id = inventory.branch_id
    left join endpoint_readings
        on endpoints.endpoint_id = endpoint_readings.endpoint_id
    left join branch_costs
        on endpoints.branch_id = branch_costs.branch_id

),

attributed as (

    -- Neon reports compute per branch, not per compute: a compute gets its branch's CU-hours when
    -- it is the branch's only compute, or the only one active in the window (the others used
    -- none then); a compute not active in the window used none; otherwise it cannot be told
    select
        *,
        count(*) over (partition by branch_id) as branch_endpoint_count,
        count(case when was_active_in_window then 1 end) over (partition by branch_id) as active_endpoint_count,
        cast({{ var('min_compute_size_cu') }} as double precision) as min_compute_size_cu,
        cast({{ var('idle_replica_after_days') }} as {{ dbt.type_bigint() }}) as idle_replica_after_days
    from computes

),

flagged as (

    select
        *,
        case
            when branch_cu_hours_last_30_days is null then null
            when branch_endpoint_count = 1 then branch_cu_hours_last_30_days
            when not was_active_in_window then 0
            when active_endpoint_count = 1 then branch_cu_hours_last_30_days
        end as cu_hours_last_30_days,
        coalesce(suspend_timeout_seconds = -1, false) as never_suspends,
        coalesce(autoscaling_limit_min_cu > min_compute_size_cu, false) as has_oversized_minimum,
        coalesce(endpoint_state = 'active' and is_stale_branch, false) as is_active_on_stale_branch,
        coalesce(
            endpoint_type = 'read_only' and days_since_active >= idle_replica_after_days, false
        ) as is_idle_read_replica
    from attributed

),

final as (

    select
        endpoint_id,
        endpoint_name,
        endpoint_type,
        project_id,
        project_name,
        branch_id,
        branch_name,
        is_stale_branch,
        endpoint_state,
        is_disabled,
        suspend_timeout_seconds,
        autoscaling_limit_min_cu,
        autoscaling_limit_max_cu,
        -- a fixed size reads "0.5 CU", an autoscaling range "0.25–2 CU"
        case
            when autoscaling_limit_min_cu = autoscaling_limit_max_cu
                then {{ cu_label('autoscaling_limit_min_cu') }} || ' CU'
            else
                {{ cu_label('autoscaling_limit_min_cu') }} || '–'
                || {{ cu_label('autoscaling_limit_max_cu') }} || ' CU'
        end as compute_size,
        last_active_at,
        days_since_active,
        branch_endpoint_count,
        branch_cu_hours_last_30_days,
        cu_hours_last_30_days,
        never_suspends,
        case
            when never_suspends
                then 'suspend_timeout_seconds is -1: it never scales to zero, '
                    || 'and bills at least its minimum size for as long as it runs'
        end as never_suspends_reason,
        case when never_suspends then cu_hours_last_30_days end as never_suspends_cu_hours,
        has_oversized_minimum,
        case
            when has_oversized_minimum
                then 'its minimum size is above {{ var("min_compute_size_cu") }} CU: '
                    || 'it never scales below it while it runs'
        end as oversized_minimum_reason,
        case when has_oversized_minimum then cu_hours_last_30_days end as oversized_minimum_cu_hours,
        min_compute_size_cu,
        is_active_on_stale_branch,
        case
            when is_active_on_stale_branch
                then 'running on a stale branch: none of its computes had user activity for '
                    || cast(branch_days_since_activity as {{ dbt.type_string() }}) || ' days'
        end as active_on_stale_branch_reason,
        case when is_active_on_stale_branch then cu_hours_last_30_days end as active_on_stale_branch_cu_hours,
        is_idle_read_replica,
        case
            when is_idle_read_replica
                then 'read replica without user activity for '
                    || cast(days_since_active as {{ dbt.type_string() }}) || ' days'
        end as idle_read_replica_reason,
        case when is_idle_read_replica then cu_hours_last_30_days end as idle_read_replica_cu_hours,
        idle_replica_after_days,
        cast(
            case when never_suspends then 1 else 0 end
            + case when has_oversized_minimum then 1 else 0 end
            + case when is_active_on_stale_branch then 1 else 0 end
            + case when is_idle_read_replica then 1 else 0 end
            as {{ dbt.type_bigint() }}
        ) as flag_count,
        observed_at
    from flagged

)

select * from final
