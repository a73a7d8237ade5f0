-- Per current branch: its computes, databases and roles, its latest size and usage counters, how
-- recently it was active, which decides whether it is stale, and how fresh all that is.
with

branches as (

    select * from {{ ref('stg_neon__branches') }}

),

endpoints as (

    select * from {{ ref('stg_neon__endpoints') }}

),

endpoint_readings as (

    select * from {{ ref('stg_neon__endpoint_latest_readings') }}

),

databases as (

    select * from {{ ref('stg_neon__databases') }}

),

roles as (

    select * from {{ ref('stg_neon__roles') }}

),

branch_readings as (

    select * from {{ ref('stg_neon__branch_latest_readings') }}

),

project_readings as (

    select * from {{ ref('stg_neon__project_latest_readings') }}

),

confirmations as (

    select * from {{ ref('stg_neon__confirmations') }}

),

project_confirmations as (

    select * from confirmations
    where object_kind = 'project'

),

branch_confirmations as (

    select * from confirmations
    where object_kind = 'branch'

),

computes as (

    select
        endpoints.branch_id,
        count(*) as endpoint_count,
        count(case when endpoints.endpoint_type = 'read_write' then 1 end) as read_write_endpoint_count,
        count(case when endpoints.endpoint_type = 'read_only' then 1 end) as read_only_endpoint_count,
        count(case when endpoint_readings.endpoint_state = 'active' then 1 end) as active_endpoint_count,
        count(case when endpoint_readings.endpoint_state = 'idle' then 1 end) as idle_endpoint_count,
        max(endpoints.autoscaling_limit_max_cu) as max_autoscaling_cu,
        max(endpoint_readings.last_active_at) as last_compute_active_at,
        {{ dbt.listagg('endpoints.endpoint_id', "', '", 'order by endpoints.endpoint_id') }} as endpoint_ids
    from endpoints
    left join endpoint_readings
        on endpoints.endpoint_id = endpoint_readings.endpoint_id
    group by endpoints.branch_id

),

database_counts as (

    select
        branch_id,
        count(*) as database_count
    from databases
    group by branch_id

),

role_counts as (

    select
        branch_id,
        count(*) as role_count
    from roles
    group by branch_id

),

joined as (

    select
        branches.branch_id,
        branches.project_id,
        branches.is_default,
        coalesce(computes.endpoint_count, 0) as endpoint_count,
        coalesce(computes.read_write_endpoint_count, 0) as read_write_endpoint_count,
        coalesce(computes.read_only_endpoint_count, 0) as read_only_endpoint_count,
        coalesce(computes.active_endpoint_count, 0) as active_endpoint_count,
        coalesce(computes.idle_endpoint_count, 0) as idle_endpoint_count,
        computes.max_autoscaling_cu,
        computes.endpoint_ids,
        coalesce(database_counts.database_count, 0) as database_count,
        coalesce(role_counts.role_count, 0) as role_count,
        branch_readings.logical_size_bytes,
        branch_readings.compute_time_seconds,
        branch_readings.active_time_seconds,
        branch_readings.written_data_bytes,
        branch_readings.data_transfer_bytes,
        computes.last_compute_active_at,
        -- a branch whose computes never ran counts as active when it was created
        coalesce(computes.last_compute_active_at, branches.created_at) as last_activity_at,
        branches.created_at,
        -- the latest run lists every project: what it did not re-read, Neon's signals confirmed
        -- unchanged, so the branch is observed as of that run
        coalesce(project_readings.read_at, branch_readings.read_at) as observed_at,
        case
            when branch_confirmations.confirmed_at < project_confirmations.confirmed_at
                then branch_confirmations.confirmed_at
            else coalesce(project_confirmations.confirmed_at, branch_confirmations.confirmed_at)
        end as confirmed_at,
        project_confirmations.refresh_due_at
    from branches
    left join computes
        on branches.branch_id = computes.branch_id
    left join database_counts
        on branches.branch_id = database_counts.branch_id
    left join role_counts
        on branches.branch_id = role_counts.branch_id
    left join branch_readings
        on branches.branch_id = branch_readings.branch_id
    left join project_readings
        on branches.project_id = project_readings.project_id
    left join project_confirmations
        on branches.project_id = project_confirmations.project_id
    left join branch_confirmations
        on branches.branch_id = branch_confirmations.branch_id

),

final as (

    select
        branch_id,
        project_id,
        endpoint_count,
        read_write_endpoint_count,
        read_only_endpoint_count,
        active_endpoint_count,
        idle_endpoint_count,
        max_autoscaling_cu,
        endpoint_ids,
        database_count,
        role_count,
        logical_size_bytes,
        compute_time_seconds,
        active_time_seconds,
        written_data_bytes,
        data_transfer_bytes,
        last_compute_active_at,
        last_activity_at,
        observed_at,
        confirmed_at,
        refresh_due_at,
        cast({{ dbt.datediff('created_at', 'observed_at', 'day') }} as {{ dbt.type_bigint() }}) as age_days,
        cast(
            {{ dbt.datediff('last_activity_at', 'observed_at', 'day') }} as {{ dbt.type_bigint() }}
        ) as days_since_activity,
        coalesce(
            not is_default
            and {{ dbt.datediff('last_activity_at', 'observed_at', 'day') }}
            >= {{ var('stale_after_days') }},
            false
        ) as is_stale,
        cast({{ var('stale_after_days') }} as {{ dbt.type_bigint() }}) as stale_after_days
    from joined

)

select * from final
