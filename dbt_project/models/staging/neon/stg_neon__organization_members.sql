-- Members of every organization. `email` is lower-cased so that shares join it; with
-- `hash_emails` it is already a lower-case hash of the lower-cased address.
with

source as (

    select * from {{ source('neon', 'organization_members') }}

),

renamed as (

    select
        -- ids
        id as member_id,
        user_id,
        org_id,

        -- strings
        role as member_role,
        lower(trim(email)) as email,

        -- booleans
        has_mfa,
        deactivated_at is not null as is_deactivated,

        -- timestamps
        {{ to_utc('joined_at') }} as joined_at,
        {{ to_utc('deactivated_at') }} as deactivated_at

    from source

)

select * from renamed
