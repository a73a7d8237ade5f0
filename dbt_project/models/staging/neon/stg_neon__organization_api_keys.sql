with

source as (

    select * from {{ source('neon', 'organization_api_keys') }}

),

renamed as (

    select
        -- ids
        id as api_key_id,
        org_id,
        project_id,
        created_by_user_id,

        -- strings
        name as api_key_name,
        nullif(last_used_from_addr, '') as last_used_from_addr,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('last_used_at') }} as last_used_at

    from source

)

select * from renamed
