with

source as (

    select * from {{ source('neon', 'databases') }}

),

renamed as (

    select
        -- ids
        id as database_id,
        branch_id,
        project_id,

        -- strings
        name as database_name,
        owner_name as owner_role_name,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at

    from source

)

select * from renamed
