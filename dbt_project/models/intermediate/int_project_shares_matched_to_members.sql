-- Per share of a current project: its organization, and whether the address it was granted to is
-- a member of that organization. Unknown (NULL) when the key could not read the members, and for a
-- personal account's project, which has no organization to be outside of.
with

shares as (

    select * from {{ ref('stg_neon__project_permissions') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

members as (

    select * from {{ ref('stg_neon__organization_members') }}

),

organizations as (

    select * from {{ ref('int_access_coverage_pivoted_to_organizations') }}

),

member_emails as (

    select distinct
        org_id,
        email
    from members

),

final as (

    select
        shares.project_id,
        shares.permission_id,
        projects.org_id,
        shares.granted_to_email,
        not shares.is_revoked as is_active,
        case when organizations.are_members_visible then member_emails.email is null end as is_outside_org,
        shares.granted_at,
        shares.revoked_at,
        shares.confirmed_at
    from shares
    inner join projects
        on shares.project_id = projects.project_id
    left join organizations
        on projects.org_id = organizations.org_id
    left join member_emails
        on
            projects.org_id = member_emails.org_id
            and shares.granted_to_email = member_emails.email

)

select * from final
