-- The latest reading of each compute's state and activity: the row of stg_neon__endpoint_readings
-- a run took last. Not Neon's snapshots (those are stg_neon__backup_snapshots).
with

readings as (

    select * from {{ ref('stg_neon__endpoint_readings') }}

),

last_read as (

    -- a reading per endpoint and day, each day's by its own run: one has the latest read_at
    select
        endpoint_id,
        max(read_at) as read_at
    from readings
    group by endpoint_id

),

latest as (

    select readings.*
    from readings
    inner join last_read
        on
            readings.endpoint_id = last_read.endpoint_id
            and readings.read_at = last_read.read_at

)

-- the columns stg_neon__endpoint_readings names: the YAML lists them, the structure tests hold them
select * from latest  -- noqa: AM04
