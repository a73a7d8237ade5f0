-- Per current project: whether the API key could read its shares and its VPC restrictions, when
-- its shares were read, and what it could not read of the project or of its organization, in
-- words. The one model that reads the projects' rows of access_coverage.
with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

coverage as (

    select * from {{ ref('stg_neon__access_coverage') }}

),

organizations as (

    select * from {{ ref('int_access_coverage_pivoted_to_organizations') }}

),

listings as (

    select
        scope_id as project_id,
        listing,
        is_visible,
        confirmed_at,
        case listing
            when 'project_permissions' then 'project shares'
            when 'project_vpc_endpoints' then 'VPC restrictions'
            when 'project_members' then 'project members'
        end
        || coalesce(' (' || cast(http_status as {{ dbt.type_string() }}) || ')', '') as listing_description
    from coverage
    where listing like 'project%'

),

pivoted as (

    select
        project_id,
        bool_and(case when listing = 'project_permissions' then is_visible end) as are_shares_visible,
        bool_and(case when listing = 'project_vpc_endpoints' then is_visible end) as are_vpc_restrictions_visible,
        max(case when listing = 'project_permissions' then confirmed_at end) as shares_confirmed_at
    from listings
    group by project_id

),

refusals as (

    select
        project_id,
        {{ dbt.listagg('listing_description', "', '", 'order by listing') }} as not_visible
    from listings
    where not is_visible
    group by project_id

),

final as (

    select
        projects.project_id,
        projects.org_id,
        pivoted.are_shares_visible,
        pivoted.are_vpc_restrictions_visible,
        -- the organization's listings, then the project's: in the order of their names
        nullif(concat_ws(', ', organizations.not_visible, refusals.not_visible), '') as not_visible,
        pivoted.shares_confirmed_at
    from projects
    left join pivoted
        on projects.project_id = pivoted.project_id
    left join refusals
        on projects.project_id = refusals.project_id
    left join organizations
        on projects.org_id = organizations.org_id

)

select * from final
