with

source as (

    select * from {{ source('neon', 'project_branches') }}

),

renamed as (

    select
        -- ids
        _dlt_id as branch_version_id,
        id as branch_id,
        project_id,
        parent_id as parent_branch_id,

        -- strings
        name as branch_name,
        current_state as branch_state,

        -- booleans
        coalesce("default", false) as is_default,
        coalesce(protected, false) as is_protected,
        _dlt_valid_to is null as is_current_version,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('expires_at') }} as expires_at,
        {{ to_utc('_dlt_valid_from') }} as valid_from,
        {{ to_utc('_dlt_valid_to') }} as valid_to

    from source

)

select * from renamed
