with

source as (

    select * from {{ source('neon', 'organizations') }}

),

renamed as (

    select
        -- ids
        id as org_id,

        -- strings
        coalesce(name, id) as org_name,
        handle as org_handle,
        plan as org_plan,
        managed_by,

        -- booleans
        allow_hipaa_projects as is_hipaa_allowed,
        require_mfa as is_mfa_required,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at

    from source

)

select * from renamed
