-- Each root branch's backup schedule as its project's last full reading returned it (Neon takes
-- scheduled snapshots of root branches; child branches are not asked). `schedule` is Neon's list
-- of entries (`frequency`, `hour`, `day`, `month`, `retention_seconds`); an empty list: none.
with

source as (

    select * from {{ source('neon', 'backup_schedules') }}

),

renamed as (

    select
        -- ids
        branch_id,
        project_id,

        -- strings
        {{ json_array_field_list('schedule', 'frequency') }} as backup_frequencies,

        -- numerics
        coalesce({{ json_array_length('schedule', []) }}, 0) as schedule_entry_count,

        -- booleans
        coalesce({{ json_array_length('schedule', []) }}, 0) > 0 as has_backup_schedule,

        -- json
        schedule,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
