with

source as (

    select * from {{ source('neon', 'roles') }}

),

renamed as (

    select
        -- ids: Neon roles have no id; a role is its branch and its name
        branch_id || '/' || name as role_key,
        branch_id,
        project_id,

        -- strings
        name as role_name,
        authentication_method,

        -- booleans
        coalesce(protected, false) as is_protected,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at

    from source

)

select * from renamed
