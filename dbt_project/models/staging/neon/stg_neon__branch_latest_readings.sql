-- The latest reading of each branch's size and usage counters: the row of stg_neon__branch_readings
-- a run took last. Not Neon's snapshots (those are stg_neon__backup_snapshots).
with

readings as (

    select * from {{ ref('stg_neon__branch_readings') }}

),

last_read as (

    -- a reading per branch and day, each day's by its own run: one has the latest read_at
    select
        branch_id,
        max(read_at) as read_at
    from readings
    group by branch_id

),

latest as (

    select readings.*
    from readings
    inner join last_read
        on
            readings.branch_id = last_read.branch_id
            and readings.read_at = last_read.read_at

)

-- the columns stg_neon__branch_readings names: the YAML lists them, the structure tests hold them
select * from latest  -- noqa: AM04
