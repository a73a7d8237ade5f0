-- Who can reach each project through Neon's per-project permissions: one row per project and
-- organization member with access, their permission exactly as Neon serves it (levels by the live
-- names) and where it comes from, with whether a legacy share reaches them too and the review's
-- findings.
with

project_members as (

    select * from {{ ref('stg_neon__project_members') }}

),

members as (

    select * from {{ ref('stg_neon__organization_members') }}

),

shares as (

    select * from {{ ref('int_project_shares_matched_to_members') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

explicit_grants as (

    -- how many members each project grants access to explicitly
    select
        project_id,
        count(case when grant_source = 'explicit' then 1 end) as explicit_grant_count
    from project_members
    group by project_id

),

active_shares as (

    select distinct
        project_id,
        granted_to_email
    from shares
    where is_active

),

with_access as (

    select * from project_members
    where effective_project_permission is not null

),

final as (

    select
        with_access.project_id || '/' || with_access.member_id as project_access_id,
        with_access.project_id,
        projects.project_name,
        projects.org_id,
        projects.org_name,
        with_access.member_id,
        with_access.user_id,
        with_access.email,
        with_access.org_role,
        with_access.project_role,
        with_access.org_default_project_permission,
        with_access.explicit_project_permission,
        with_access.effective_project_permission,
        with_access.grant_source,
        members.is_deactivated,
        active_shares.granted_to_email is not null as has_active_share,
        with_access.grant_source = 'org_admin_override' as is_admin_by_override,
        coalesce(explicit_grants.explicit_grant_count, 0) = 0 as is_project_without_explicit_grant,
        with_access.confirmed_at
    from with_access
    left join projects
        on with_access.project_id = projects.project_id
    left join members
        on with_access.member_id = members.member_id and projects.org_id = members.org_id
    left join explicit_grants
        on with_access.project_id = explicit_grants.project_id
    left join active_shares
        on
            with_access.project_id = active_shares.project_id
            and with_access.email = active_shares.granted_to_email

)

select * from final
