-- Per organization whose access listings were read: whether the API key could read each of them
-- (members, API keys, VPC endpoints), when they were read, and what it could not read, in words.
-- The one model that reads the organizations' rows of access_coverage.
with

coverage as (

    select * from {{ ref('stg_neon__access_coverage') }}

),

listings as (

    select
        scope_id as org_id,
        listing,
        is_visible,
        confirmed_at,
        case listing
            when 'organization_members' then 'organization members'
            when 'organization_api_keys' then 'organization API keys'
            when 'organization_vpc_endpoints' then 'organization VPC endpoints'
        end
        || coalesce(' (' || cast(http_status as {{ dbt.type_string() }}) || ')', '') as listing_description
    from coverage
    where listing like 'organization%'

),

pivoted as (

    select
        org_id,
        bool_and(case when listing = 'organization_members' then is_visible end) as are_members_visible,
        bool_and(case when listing = 'organization_api_keys' then is_visible end) as are_api_keys_visible,
        bool_and(case when listing = 'organization_vpc_endpoints' then is_visible end)
            as are_vpc_endpoints_visible,
        max(case when listing = 'organization_members' then confirmed_at end) as members_confirmed_at,
        max(case when listing = 'organization_api_keys' then confirmed_at end) as api_keys_confirmed_at
    from listings
    group by org_id

),

refusals as (

    select
        org_id,
        {{ dbt.listagg('listing_description', "', '", 'order by listing') }} as not_visible
    from listings
    where not is_visible
    group by org_id

),

final as (

    select
        pivoted.org_id,
        pivoted.are_members_visible,
        pivoted.are_api_keys_visible,
        pivoted.are_vpc_endpoints_visible,
        refusals.not_visible,
        pivoted.members_confirmed_at,
        pivoted.api_keys_confirmed_at
    from pivoted
    left join refusals
        on pivoted.org_id = refusals.org_id

)

select * from final
