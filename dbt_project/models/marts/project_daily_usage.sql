-- Per project and UTC day a run read it: storage and usage summed over the branches it had that
-- day, from the daily readings. A branch that day's run did not re-read (its project's signals
-- had not moved) counts with its last reading, carried forward.
with

project_readings as (

    select * from {{ ref('stg_neon__project_readings') }}

),

branch_readings as (

    select * from {{ ref('stg_neon__branch_readings') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

project_days as (

    select
        *,
        lag(reading_date) over (partition by project_id order by reading_date) as previous_usage_date
    from project_readings

),

listing_reads as (

    -- the days a run re-read each project's branch listing, and when (a day's last run wins)
    select
        project_id,
        reading_date,
        max(read_at) as listing_read_at
    from branch_readings
    group by project_id, reading_date

),

listings as (

    -- the branches each listing read held: a branch deleted since an earlier run that day is
    -- left out, though its earlier reading of the day remains
    select branch_readings.*
    from branch_readings
    inner join listing_reads
        on
            branch_readings.project_id = listing_reads.project_id
            and branch_readings.reading_date = listing_reads.reading_date
            and branch_readings.read_at = listing_reads.listing_read_at

),

latest_listings as (

    -- for each day the project was read, the day its branch listing was last read: that day, or
    -- an earlier one when the run did not re-read it (Neon's signals said nothing changed)
    select
        project_days.project_id,
        project_days.reading_date as usage_date,
        max(listing_reads.reading_date) as listing_date
    from project_days
    inner join listing_reads
        on
            project_days.project_id = listing_reads.project_id
            and project_days.reading_date >= listing_reads.reading_date
    group by project_days.project_id, project_days.reading_date

),

branch_days as (

    select
        latest_listings.project_id,
        latest_listings.usage_date,
        listings.branch_id,
        listings.logical_size_bytes,
        listings.compute_time_seconds,
        listings.written_data_bytes,
        latest_listings.listing_date < latest_listings.usage_date as is_carried_forward
    from latest_listings
    inner join listings
        on
            latest_listings.project_id = listings.project_id
            and latest_listings.listing_date = listings.reading_date

),

branch_previous_days as (

    select
        *,
        lag(compute_time_seconds) over (partition by branch_id order by usage_date) as previous_compute_time_seconds,
        lag(written_data_bytes) over (partition by branch_id order by usage_date) as previous_written_data_bytes
    from branch_days

),

branch_increases as (

    -- what each counter added since the branch's previous day: the whole counter for a branch new
    -- since then, and after a drop (a new billing period) the counter as it stands
    select
        project_id,
        usage_date,
        branch_id,
        logical_size_bytes,
        compute_time_seconds,
        written_data_bytes,
        is_carried_forward,
        case
            when compute_time_seconds < previous_compute_time_seconds then compute_time_seconds
            else compute_time_seconds - coalesce(previous_compute_time_seconds, 0)
        end as compute_time_seconds_added,
        case
            when written_data_bytes < previous_written_data_bytes then written_data_bytes
            else written_data_bytes - coalesce(previous_written_data_bytes, 0)
        end as written_data_bytes_added
    from branch_previous_days

),

per_day as (

    select
        project_id,
        usage_date,
        cast(sum(logical_size_bytes) as {{ dbt.type_bigint() }}) as logical_size_bytes,
        cast(sum(compute_time_seconds) as {{ dbt.type_bigint() }}) as compute_time_seconds,
        cast(sum(written_data_bytes) as {{ dbt.type_bigint() }}) as written_data_bytes,
        cast(sum(compute_time_seconds_added) as {{ dbt.type_bigint() }}) as compute_time_seconds_added,
        cast(sum(written_data_bytes_added) as {{ dbt.type_bigint() }}) as written_data_bytes_added,
        count(*) as branch_count,
        count(case when is_carried_forward then 1 end) as carried_forward_branch_count
    from branch_increases
    group by project_id, usage_date

),

final as (

    select
        project_days.project_id,
        projects.project_name,
        project_days.reading_date as usage_date,
        project_days.previous_usage_date,
        project_days.synthetic_storage_size_bytes,
        per_day.logical_size_bytes,
        per_day.compute_time_seconds,
        per_day.written_data_bytes,
        -- nothing to compare with on the project's first day
        case
            when project_days.previous_usage_date is not null then per_day.compute_time_seconds_added
        end as compute_time_seconds_added,
        case
            when project_days.previous_usage_date is not null then per_day.written_data_bytes_added
        end as written_data_bytes_added,
        coalesce(per_day.branch_count, 0) as branch_count,
        coalesce(per_day.carried_forward_branch_count, 0) as carried_forward_branch_count,
        projects.project_id is null as is_deleted_project,
        project_days.read_at as observed_at
    from project_days
    left join per_day
        on
            project_days.project_id = per_day.project_id
            and project_days.reading_date = per_day.usage_date
    left join projects
        on project_days.project_id = projects.project_id

)

select * from final
