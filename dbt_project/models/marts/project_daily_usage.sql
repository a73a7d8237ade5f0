-- Per project and UTC day a run read it: storage and usage summed over the branches it had that
-- day, from the snapshot history. A branch that day's run did not re-read (its project's signals
-- had not moved) counts with its last reading, carried forward.
with

project_readings as (

    select * from {{ ref('stg_neon__project_snapshot_readings') }}

),

branch_readings as (

    select * from {{ ref('stg_neon__branch_snapshot_readings') }}

),

branch_versions as (

    select * from {{ ref('stg_neon__branch_versions') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

project_days as (

    select
        *,
        lag(snapshot_date) over (partition by project_id order by snapshot_date) as previous_usage_date
    from project_readings

),

branch_deletions as (

    -- the UTC day a run found the branch gone; NULL while it exists
    select
        branch_id,
        case
            when count(case when is_current_version then 1 end) = 0 then cast(max(valid_to) as date)
        end as deleted_on
    from branch_versions
    group by branch_id

),

branch_reading_spans as (

    -- each reading, up to the day of the branch's next one
    select
        branch_id,
        project_id,
        snapshot_date,
        logical_size_bytes,
        compute_time_seconds,
        written_data_bytes,
        lead(snapshot_date) over (partition by branch_id order by snapshot_date) as next_snapshot_date
    from branch_readings

),

branch_days as (

    -- every branch on every day its project was read: that day's reading, or the last before it
    select
        project_readings.project_id,
        project_readings.snapshot_date as usage_date,
        branch_reading_spans.branch_id,
        branch_reading_spans.logical_size_bytes,
        branch_reading_spans.compute_time_seconds,
        branch_reading_spans.written_data_bytes,
        branch_reading_spans.snapshot_date < project_readings.snapshot_date as is_carried_forward
    from project_readings
    inner join branch_reading_spans
        on
            project_readings.project_id = branch_reading_spans.project_id
            and project_readings.snapshot_date >= branch_reading_spans.snapshot_date
            and (
                branch_reading_spans.next_snapshot_date is null
                or project_readings.snapshot_date < branch_reading_spans.next_snapshot_date
            )
    left join branch_deletions
        on branch_reading_spans.branch_id = branch_deletions.branch_id
    where branch_deletions.deleted_on is null or project_readings.snapshot_date < branch_deletions.deleted_on

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
        project_days.snapshot_date as usage_date,
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
        project_days.snapshot_at as observed_at
    from project_days
    left join per_day
        on
            project_days.project_id = per_day.project_id
            and project_days.snapshot_date = per_day.usage_date
    left join projects
        on project_days.project_id = projects.project_id

)

select * from final
