-- Neon's snapshots (point-in-time copies of a branch, manual or taken on a backup schedule), as
-- the last run listed them: not the daily counter readings of the `*_snapshots` tables. Neon
-- writes their times as plain RFC 3339 strings; they are cast here. A snapshot is billed on its
-- `diff_size` when Neon sets one, else on its `full_size`; neither set: not sized yet, not billed.
with

source as (

    select * from {{ source('neon', 'backup_snapshots') }}

),

renamed as (

    select
        -- ids
        id as snapshot_id,
        project_id,
        source_branch_id,

        -- strings
        name as snapshot_name,
        lsn,

        -- numerics
        full_size as full_size_bytes,
        diff_size as diff_size_bytes,
        coalesce(diff_size, full_size) as billed_size_bytes,

        -- booleans
        coalesce(manual, false) as is_manual,

        -- timestamps
        {{ to_utc('cast("timestamp" as timestamp with time zone)') }} as captured_at,
        {{ to_utc('cast(created_at as timestamp with time zone)') }} as created_at,
        {{ to_utc('cast(expires_at as timestamp with time zone)') }} as expires_at,
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
