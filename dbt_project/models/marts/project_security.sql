-- Per current project: who can connect to it (IP allow list, public and VPC connections), how it
-- is protected and audited, how widely it is shared, and what the API key could not see of it.
with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

project_rollup as (

    select * from {{ ref('int_projects_rollup') }}

),

shares as (

    select * from {{ ref('int_project_shares_matched_to_members') }}

),

vpc_restrictions as (

    select * from {{ ref('stg_neon__project_vpc_endpoints') }}

),

visibility as (

    select * from {{ ref('int_access_coverage_pivoted_to_projects') }}

),

share_counts as (

    select
        project_id,
        count(case when is_active then 1 end) as active_share_count,
        -- unknown when the members of the project's organization could not be read
        case
            when count(case when is_active and is_outside_org is null then 1 end) = 0
                then count(case when is_active and is_outside_org then 1 end)
        end as outside_org_share_count
    from shares
    group by project_id

),

restriction_counts as (

    select
        project_id,
        count(*) as vpc_restriction_count
    from vpc_restrictions
    group by project_id

),

settings as (

    select
        projects.*,
        projects.allowed_ip_count > 0 as has_ip_allow_list,
        coalesce(project_rollup.branch_count, 0) as branch_count,
        coalesce(project_rollup.protected_branch_count, 0) as protected_branch_count,
        projects.allowed_ip_count > 0
        and (
            not projects.is_ip_allow_list_protected_branches_only
            or coalesce(project_rollup.protected_branch_count = project_rollup.branch_count, true)
        ) as is_ip_allow_list_on_every_branch
    from projects
    left join project_rollup
        on projects.project_id = project_rollup.project_id

),

final as (

    select
        settings.project_id,
        settings.project_name,
        settings.org_id,
        settings.org_name,
        settings.region_id,
        not settings.is_public_connection_blocked and not settings.is_ip_allow_list_on_every_branch
            as is_reachable_from_anywhere,
        settings.has_ip_allow_list,
        cast(settings.allowed_ip_count as {{ dbt.type_bigint() }}) as allowed_ip_count,
        settings.is_ip_allow_list_on_every_branch,
        settings.is_public_connection_blocked,
        settings.is_vpc_connection_blocked,
        settings.is_public_connection_blocked and not settings.is_vpc_connection_blocked as is_vpc_only,
        case
            when visibility.are_vpc_restrictions_visible then coalesce(restriction_counts.vpc_restriction_count, 0)
        end as vpc_restriction_count,
        settings.branch_count,
        settings.protected_branch_count,
        settings.history_retention_seconds,
        settings.is_logical_replication_enabled,
        settings.is_hipaa_enabled,
        settings.audit_log_level,
        case when visibility.are_shares_visible then coalesce(share_counts.active_share_count, 0) end
            as active_share_count,
        case
            when not visibility.are_shares_visible then null
            when share_counts.project_id is null then 0
            else share_counts.outside_org_share_count
        end as outside_org_share_count,
        visibility.not_visible,
        visibility.shares_confirmed_at
    from settings
    left join share_counts
        on settings.project_id = share_counts.project_id
    left join restriction_counts
        on settings.project_id = restriction_counts.project_id
    left join visibility
        on settings.project_id = visibility.project_id

)

select * from final
