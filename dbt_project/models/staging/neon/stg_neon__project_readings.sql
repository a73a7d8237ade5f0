-- Every reading of each project's usage counters: one per project and day a run read it (the
-- day's last run wins). The latest one per project is stg_neon__project_latest_readings.
with

source as (

    select * from {{ source('neon', 'project_snapshots') }}

),

renamed as (

    select
        -- ids
        project_id,

        -- numerics
        active_time as active_time_seconds,
        cpu_used_sec as cpu_used_seconds,
        synthetic_storage_size as synthetic_storage_size_bytes,

        -- dates and timestamps
        snapshot_date as reading_date,
        {{ to_utc('snapshot_at') }} as read_at,
        {{ to_utc('compute_last_active_at') }} as compute_last_active_at,
        {{ to_utc('updated_at') }} as updated_at

    from source

)

select * from renamed
