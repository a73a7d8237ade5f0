-- Each organization's monthly spending limit (Neon: Launch and Scale plans only; an organization
-- on another plan has no row). NULL: no limit set. Neon emails at 80% and 100% of it and does not
-- suspend computes when it is reached.
with

source as (

    select * from {{ source('neon', 'organization_spending_limits') }}

),

renamed as (

    select
        -- ids
        org_id,

        -- numerics
        spending_limit_cents,
        cast(spending_limit_cents as decimal(38, 6)) / 100 as spending_limit_usd,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
