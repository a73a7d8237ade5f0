-- Every reading of each compute's state and activity: one per compute and day a run re-read its
-- project's compute listing (the day's last run wins). The latest one per compute is
-- stg_neon__endpoint_latest_readings.
with

source as (

    select * from {{ source('neon', 'endpoint_snapshots') }}

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

    from source

)

select * from renamed
