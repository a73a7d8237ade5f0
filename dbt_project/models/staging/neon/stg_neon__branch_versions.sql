-- Every version of every branch that dlt's scd2 history holds, current and retired ones.
with

source as (

    select * from {{ source('neon', 'project_branches') }}

),

renamed as (

    select
        -- ids
        id || '@' || cast({{ to_utc('_dlt_valid_from') }} as {{ dbt.type_string() }}) as branch_version_id,
        id as branch_id,
        project_id,
        parent_id as parent_branch_id,

        -- strings
        name as branch_name,
        current_state as branch_state,
        creation_source,
        init_source,
        restore_status,

        -- numerics
        ttl_interval_seconds,

        -- booleans
        coalesce("default", false) as is_default,
        coalesce(protected, false) as is_protected,
        _dlt_valid_to is null as is_current_version,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('state_changed_at') }} as state_changed_at,
        {{ to_utc('expires_at') }} as expires_at,
        {{ to_utc('last_reset_at') }} as last_reset_at,
        {{ to_utc('_dlt_valid_from') }} as valid_from,
        {{ to_utc('_dlt_valid_to') }} as valid_to

    from source

)

select * from renamed
