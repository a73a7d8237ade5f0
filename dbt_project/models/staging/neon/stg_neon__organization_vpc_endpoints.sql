with

source as (

    select * from {{ source('neon', 'organization_vpc_endpoints') }}

),

renamed as (

    select
        -- ids
        org_id,
        vpc_endpoint_id,
        region_id,

        -- strings
        label as vpc_endpoint_label

    from source

)

select * from renamed
