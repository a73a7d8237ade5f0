-- The latest reading of each branch's size and usage counters (the row a run last took). Its
-- daily readings are stg_neon__branch_readings; Neon's snapshots are stg_neon__backup_snapshots.
with

source as (

    select * from {{ source('neon', 'branch_snapshots') }}

),

ranked as (

    select
        *,
        row_number() over (partition by branch_id order by snapshot_at desc) as recency_rank
    from source

),

latest as (

    select * from ranked
    where recency_rank = 1

),

renamed as (

    select
        -- ids
        branch_id,
        project_id,

        -- strings
        pending_state as pending_branch_state,
        -- the actions Neon restricts on the branch now (`restore`, `delete-rw-endpoint`, ...)
        {{ json_array_field_list('restricted_actions', 'name') }} as restricted_action_names,

        -- numerics
        logical_size as logical_size_bytes,
        compute_time_seconds,
        active_time_seconds,
        cpu_used_sec as cpu_used_seconds,
        written_data_bytes,
        data_transfer_bytes,

        -- json: `[{name, reason}]`, NULL when nothing is restricted
        restricted_actions,

        -- dates and timestamps
        snapshot_date as reading_date,
        {{ to_utc('snapshot_at') }} as read_at,
        {{ to_utc('updated_at') }} as updated_at

    from latest

)

select * from renamed
