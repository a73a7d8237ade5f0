-- Per organization, and once for the personal account's projects (no organization): the access
-- review in counts, and what the key could not read, as flags and counts of unknowns, never
-- parsed from words. No column that holds an address (`principal`, `created_by`) is read.
with

access_review as (

    select * from {{ ref('access_review') }}

),

project_security as (

    select * from {{ ref('project_security') }}

),

organizations as (

    select * from {{ ref('organizations') }}

),

grants as (

    select
        org_id,
        count(case when principal_kind = 'member' and is_active then 1 end) as active_member_count,
        count(case when principal_kind = 'member' and is_active and member_role = 'admin' then 1 end)
            as admin_count,
        count(case when is_flagged_without_mfa then 1 end) as member_without_mfa_count,
        count(case when principal_kind = 'api_key' then 1 end) as api_key_count,
        count(case when is_flagged_unused_key then 1 end) as unused_api_key_count,
        count(case when principal_kind = 'project_share' and is_active then 1 end) as active_share_count,
        count(case when is_flagged_outside_share then 1 end) as outside_share_count,
        count(case when is_flagged_excess_admin then 1 end) as excess_admin_count
    from access_review
    group by org_id

),

projects as (

    select
        org_id,
        max(org_name) as org_name,
        count(*) as project_count,
        count(case when is_reachable_from_anywhere then 1 end) as reachable_project_count,
        count(case when has_ip_allow_list then 1 end) as ip_allow_list_project_count,
        count(case when is_vpc_only then 1 end) as vpc_only_project_count,
        count(case when active_share_count is null then 1 end) as unknown_shares_project_count,
        count(case when vpc_restriction_count is null then 1 end) as unknown_vpc_restrictions_project_count
    from project_security
    group by org_id

),

owners as (

    select org_id from organizations
    union
    select org_id from grants
    union
    select org_id from projects

),

final as (

    select
        coalesce(owners.org_id, 'personal') as owner_id,
        owners.org_id,
        coalesce(organizations.org_name, projects.org_name) as org_name,
        owners.org_id is null as is_personal_account,
        organizations.are_members_visible,
        organizations.are_api_keys_visible,
        coalesce(projects.unknown_shares_project_count, 0) = 0 as are_shares_visible,
        organizations.not_visible,
        coalesce(projects.unknown_shares_project_count, 0) as unknown_shares_project_count,
        coalesce(projects.unknown_vpc_restrictions_project_count, 0) as unknown_vpc_restrictions_project_count,
        coalesce(grants.active_member_count, 0) as active_member_count,
        coalesce(grants.admin_count, 0) as admin_count,
        coalesce(grants.member_without_mfa_count, 0) as member_without_mfa_count,
        coalesce(grants.api_key_count, 0) as api_key_count,
        coalesce(grants.unused_api_key_count, 0) as unused_api_key_count,
        coalesce(grants.active_share_count, 0) as active_share_count,
        coalesce(grants.outside_share_count, 0) as outside_share_count,
        coalesce(grants.excess_admin_count, 0) as excess_admin_count,
        coalesce(projects.project_count, 0) as project_count,
        coalesce(projects.reachable_project_count, 0) as reachable_project_count,
        coalesce(projects.ip_allow_list_project_count, 0) as ip_allow_list_project_count,
        coalesce(projects.vpc_only_project_count, 0) as vpc_only_project_count
    from owners
    left join organizations
        on owners.org_id = organizations.org_id
    left join grants
        on owners.org_id is not distinct from grants.org_id
    left join projects
        on owners.org_id is not distinct from projects.org_id

)

select * from final
