-- The access review's findings, one row each, from both models while both exist: members who reach
-- a project as organization admins whatever is granted on it, collaborators (Neon's organization
-- role for people outside the team) with access, legacy shares still active to an address outside
-- the organization, and organization projects nobody is granted explicitly.
with

project_access as (

    select * from {{ ref('project_access') }}

),

shares as (

    select * from {{ ref('int_project_shares_matched_to_members') }}

),

project_members as (

    select * from {{ ref('stg_neon__project_members') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

by_member as (

    select
        case
            when is_admin_by_override then 'admin_by_override'
            else 'outside_collaborator'
        end as finding,
        project_id,
        org_id,
        member_id,
        email,
        effective_project_permission as permission
    from project_access
    where is_admin_by_override or org_role = 'collaborator'

),

outside_shares as (

    select
        'shared_outside_organization' as finding,
        project_id,
        org_id,
        cast(null as {{ dbt.type_string() }}) as member_id,
        granted_to_email as email,
        cast(null as {{ dbt.type_string() }}) as permission
    from shares
    where is_active and is_outside_org

),

without_explicit_grant as (

    -- projects whose members were read (an organization's) and none holds an explicit grant
    select
        'no_explicit_grant' as finding,
        project_members.project_id,
        projects.org_id,
        cast(null as {{ dbt.type_string() }}) as member_id,
        cast(null as {{ dbt.type_string() }}) as email,
        cast(null as {{ dbt.type_string() }}) as permission
    from project_members
    inner join projects
        on project_members.project_id = projects.project_id
    group by project_members.project_id, projects.org_id
    having count(case when project_members.grant_source = 'explicit' then 1 end) = 0

),

findings as (

    select * from by_member
    union all
    select * from outside_shares
    union all
    select * from without_explicit_grant

),

final as (

    select
        finding || '/' || project_id || '/' || coalesce(member_id, email, '') as finding_id,
        finding,
        project_id,
        org_id,
        member_id,
        email,
        permission
    from findings

)

select * from final
