-- The latest reading of each project's usage counters (the row a run last took). Its
-- daily readings are stg_neon__project_readings; Neon's snapshots are stg_neon__backup_snapshots.
with

source as (

    select * from {{ source('neon', 'project_snapshots') }}

),

ranked as (

    select
        *,
        row_number() over (partition by project_id order by snapshot_at desc) as recency_rank
    from source

),

latest as (

    select * from ranked
    where recency_rank = 1

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

    from latest

)

select * from renamed
