-- The latest reading of each compute's state and activity (the row a run last took). Its
-- daily readings are stg_neon__endpoint_readings; Neon's snapshots are stg_neon__backup_snapshots.
with

source as (

    select * from {{ source('neon', 'endpoint_snapshots') }}

),

ranked as (

    select
        *,
        row_number() over (partition by endpoint_id order by snapshot_at desc) as recency_rank
    from source

),

latest as (

    select * from ranked
    where recency_rank = 1

),

renamed as (

    select
        -- ids
        endpoint_id,
        project_id,

        -- strings
        current_state as endpoint_state,
        pending_state as pending_endpoint_state,

        -- dates and timestamps
        snapshot_date as reading_date,
        {{ to_utc('snapshot_at') }} as read_at,
        {{ to_utc('last_active') }} as last_active_at,
        {{ to_utc('started_at') }} as started_at,
        {{ to_utc('suspended_at') }} as suspended_at,
        {{ to_utc('updated_at') }} as updated_at

    from latest

)

select * from renamed
