-- The current version of each branch (dlt's scd2 history: `_dlt_valid_to` is NULL on it).
with

current_versions as (

    {{ dlt_current_versions(source('neon', 'project_branches')) }}

),

renamed as (

    select
        -- ids
        id as branch_id,
        project_id,
        parent_id as parent_branch_id,
        parent_lsn,
        restored_from as restored_from_snapshot_id,
        restored_as as restored_as_branch_id,

        -- strings
        name as branch_name,
        current_state as branch_state,
        creation_source,
        init_source,
        restore_status,
        {{ json_text('created_by', ['name']) }} as created_by_name,

        -- numerics
        ttl_interval_seconds,

        -- booleans
        coalesce("default", false) as is_default,
        coalesce(protected, false) as is_protected,

        -- json
        created_by,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('state_changed_at') }} as state_changed_at,
        {{ to_utc('parent_timestamp') }} as parent_timestamp,
        {{ to_utc('expires_at') }} as expires_at,
        {{ to_utc('last_reset_at') }} as last_reset_at,
        {{ to_utc('_dlt_valid_from') }} as version_valid_from

    from current_versions

)

select * from renamed
