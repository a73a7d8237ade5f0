-- What the API key could read of the access listings, per organization or project.
with

source as (

    select * from {{ source('neon', 'access_coverage') }}

),

renamed as (

    select
        -- ids
        scope_id,
        org_id,
        project_id,

        -- strings
        listing,
        detail as refusal_detail,
        read_reason,

        -- numerics
        status as http_status,

        -- booleans
        is_visible,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
