-- Every reading of each branch's size and usage counters: one per branch and day a run re-read
-- its project's branch listing (the day's last run wins). An incremental run that did not re-read
-- a project leaves no reading of its branches that day. The latest one per branch is
-- stg_neon__branch_latest_readings.
with

source as (

    select * from {{ source('neon', 'branch_snapshots') }}

),

renamed as (

    select
        -- ids
        branch_id,
        project_id,

        -- strings
        pending_state as pending_branch_state,
        -- the actions Neon restricted on the branch when read (`restore`, ...)
        {{ json_array_field_list('restricted_actions', 'name') }} as restricted_action_names,

        -- numerics
        logical_size as logical_size_bytes,
        compute_time_seconds,
        active_time_seconds,
        cpu_used_sec as cpu_used_seconds,
        written_data_bytes,
        data_transfer_bytes,

        -- json: `[{name, reason}]`, NULL when nothing was restricted
        restricted_actions,

        -- dates and timestamps
        snapshot_date as reading_date,
        {{ to_utc('snapshot_at') }} as read_at,
        {{ to_utc('updated_at') }} as updated_at

    from source

)

select * from renamed
