with

source as (

    select * from {{ source('neon', 'regions') }}

),

renamed as (

    select
        -- ids
        region_id,

        -- strings
        coalesce(name, region_id) as region_name,
        split_part(region_id, '-', 1) as cloud_provider,

        -- numerics: Neon sends coordinates as strings, empty when unknown
        cast(nullif(geo_lat, '') as double precision) as geo_latitude,
        cast(nullif(geo_long, '') as double precision) as geo_longitude,

        -- booleans
        coalesce("default", false) as is_default_region,
        name is null as is_derived_from_projects

    from source

)

select * from renamed
