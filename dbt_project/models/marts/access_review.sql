-- Every grant of access to the estate: organization members, organization API keys and project
-- shares, one row each, with the review's flags and their reasons.
with

members as (

    select * from {{ ref('stg_neon__organization_members') }}

),

api_keys as (

    select * from {{ ref('stg_neon__organization_api_keys') }}

),

shares as (

    select * from {{ ref('int_project_shares_matched_to_members') }}

),

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

organizations as (

    select * from {{ ref('stg_neon__organizations') }}

),

listings_read as (

    -- when each organization-wide listing was read: the reference time of "unused for N days"
    select * from {{ ref('int_access_coverage_pivoted_to_organizations') }}

),

active_admins as (

    select
        org_id,
        count(*) as admin_count
    from members
    where member_role = 'admin' and not is_deactivated
    group by org_id

),

member_grants as (

    select
        'member/' || members.member_id as grant_id,
        'member' as principal_kind,
        members.org_id,
        cast(null as {{ dbt.type_string() }}) as project_id,
        members.email as principal,
        members.member_role,
        members.joined_at as granted_at,
        cast(null as {{ dbt.type_string() }}) as created_by_user_id,
        cast(null as {{ dbt.type_timestamp() }}) as last_used_at,
        cast(null as {{ dbt.type_string() }}) as last_used_from_addr,
        cast(null as {{ dbt.type_bigint() }}) as days_since_last_use,
        members.has_mfa,
        not members.is_deactivated as is_active,
        false as is_outside_org,
        members.deactivated_at as ended_at,
        case
            when members.member_role = 'admin' and not members.is_deactivated then active_admins.admin_count
        end as org_admin_count,
        listings_read.members_confirmed_at as confirmed_at
    from members
    left join active_admins
        on members.org_id = active_admins.org_id
    left join listings_read
        on members.org_id = listings_read.org_id

),

key_grants as (

    select
        'api_key/' || cast(api_keys.api_key_id as {{ dbt.type_string() }}) as grant_id,
        'api_key' as principal_kind,
        api_keys.org_id,
        api_keys.project_id,
        api_keys.api_key_name as principal,
        cast(null as {{ dbt.type_string() }}) as member_role,
        api_keys.created_at as granted_at,
        api_keys.created_by_user_id,
        api_keys.last_used_at,
        api_keys.last_used_from_addr,
        cast(
            {{ dbt.datediff('api_keys.last_used_at', 'listings_read.api_keys_confirmed_at', 'day') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_last_use,
        cast(null as boolean) as has_mfa,
        true as is_active,
        false as is_outside_org,
        cast(null as {{ dbt.type_timestamp() }}) as ended_at,
        cast(null as {{ dbt.type_bigint() }}) as org_admin_count,
        listings_read.api_keys_confirmed_at as confirmed_at
    from api_keys
    left join listings_read
        on api_keys.org_id = listings_read.org_id

),

share_grants as (

    select
        'project_share/' || project_id || '/' || permission_id as grant_id,
        'project_share' as principal_kind,
        org_id,
        project_id,
        granted_to_email as principal,
        cast(null as {{ dbt.type_string() }}) as member_role,
        granted_at,
        cast(null as {{ dbt.type_string() }}) as created_by_user_id,
        cast(null as {{ dbt.type_timestamp() }}) as last_used_at,
        cast(null as {{ dbt.type_string() }}) as last_used_from_addr,
        cast(null as {{ dbt.type_bigint() }}) as days_since_last_use,
        cast(null as boolean) as has_mfa,
        is_active,
        is_outside_org,
        revoked_at as ended_at,
        cast(null as {{ dbt.type_bigint() }}) as org_admin_count,
        confirmed_at
    from shares

),

grants as (

    select * from member_grants
    union all
    select * from key_grants
    union all
    select * from share_grants

),

flagged as (

    select
        grants.*,
        coalesce(grants.principal_kind = 'member' and grants.is_active and not grants.has_mfa, false)
            as is_flagged_without_mfa,
        coalesce(
            grants.principal_kind = 'api_key'
            and (
                grants.last_used_at is null
                or grants.days_since_last_use >= {{ var('api_key_unused_after_days') }}
            ),
            false
        ) as is_flagged_unused_key,
        coalesce(grants.principal_kind = 'project_share' and grants.is_active and grants.is_outside_org, false)
            as is_flagged_outside_share,
        coalesce(grants.org_admin_count > {{ var('max_admins_per_org') }}, false) as is_flagged_excess_admin
    from grants

),

final as (

    select
        flagged.grant_id,
        flagged.principal_kind,
        flagged.org_id,
        organizations.org_name,
        flagged.project_id,
        projects.project_name,
        flagged.principal,
        flagged.member_role,
        flagged.granted_at,
        creators.email as created_by,
        flagged.created_by_user_id,
        flagged.last_used_at,
        flagged.last_used_from_addr,
        flagged.days_since_last_use,
        flagged.has_mfa,
        flagged.is_active,
        flagged.is_outside_org,
        flagged.ended_at,
        flagged.is_flagged_without_mfa,
        flagged.is_flagged_unused_key,
        flagged.is_flagged_outside_share,
        flagged.is_flagged_excess_admin,
        (
            flagged.is_flagged_without_mfa
            or flagged.is_flagged_unused_key
            or flagged.is_flagged_outside_share
            or flagged.is_flagged_excess_admin
        ) as is_flagged,
        nullif(concat_ws(
            '; ',
            case when flagged.is_flagged_without_mfa then 'active member without MFA' end,
            case
                when flagged.is_flagged_unused_key and flagged.last_used_at is null then 'API key never used'
                when flagged.is_flagged_unused_key
                    then
                        'API key unused for '
                        || cast(flagged.days_since_last_use as {{ dbt.type_string() }})
                        || ' days (flagged from {{ var("api_key_unused_after_days") }})'
            end,
            case when flagged.is_flagged_outside_share then 'shared outside the organization' end,
            case
                when flagged.is_flagged_excess_admin
                    then
                        'one of ' || cast(flagged.org_admin_count as {{ dbt.type_string() }})
                        || ' admins (more than {{ var("max_admins_per_org") }})'
            end
        ), '') as review_reasons,
        flagged.confirmed_at
    from flagged
    left join organizations
        on flagged.org_id = organizations.org_id
    left join projects
        on flagged.project_id = projects.project_id
    left join members as creators
        on flagged.created_by_user_id = creators.user_id and flagged.org_id = creators.org_id

)

select * from final
