-- Shares of every project, revoked ones included. `granted_to_email` is lower-cased, as members'
-- emails are, so that the two join.
with

source as (

    select * from {{ source('neon', 'project_permissions') }}

),

renamed as (

    select
        -- ids
        id as permission_id,
        project_id,

        -- strings
        lower(trim(granted_to_email)) as granted_to_email,

        -- booleans
        revoked_at is not null as is_revoked,

        -- timestamps
        {{ to_utc('granted_at') }} as granted_at,
        {{ to_utc('revoked_at') }} as revoked_at,
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
