-- The latest reading of each project's usage counters: the row of stg_neon__project_readings
-- a run took last. Not Neon's snapshots (those are stg_neon__backup_snapshots).
with

readings as (

    select * from {{ ref('stg_neon__project_readings') }}

),

last_read as (

    -- a reading per project and day, each day's by its own run: one has the latest read_at
    select
        project_id,
        max(read_at) as read_at
    from readings
    group by project_id

),

latest as (

    select readings.*
    from readings
    inner join last_read
        on
            readings.project_id = last_read.project_id
            and readings.read_at = last_read.read_at

)

-- the columns stg_neon__project_readings names: the YAML lists them, the structure tests hold them
select * from latest  -- noqa: AM04
