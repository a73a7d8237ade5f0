with

source as (

    select * from {{ source('neon', 'project_vpc_endpoints') }}

),

renamed as (

    select
        -- ids
        project_id,
        vpc_endpoint_id,

        -- strings
        label as vpc_endpoint_label,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
