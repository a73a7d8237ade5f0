-- The estate at a glance, in one row: the headline of the report, the notebook and the summary
-- `make demo` prints, the access review's flags in counts, and the thresholds this build applied.
with

projects as (

    select * from {{ ref('projects') }}

),

regions as (

    select * from {{ ref('regional_footprint') }}

),

grants as (

    select * from {{ ref('access_review') }}

),

project_security as (

    select * from {{ ref('project_security') }}

),

project_totals as (

    select
        count(*) as project_count,
        coalesce(sum(branch_count), 0) as branch_count,
        coalesce(sum(stale_branch_count), 0) as stale_branch_count,
        coalesce(sum(stale_logical_size_bytes), 0) as stale_logical_size_bytes,
        coalesce(sum(endpoint_count), 0) as endpoint_count,
        coalesce(sum(database_count), 0) as database_count,
        coalesce(sum(logical_size_bytes), 0) as logical_size_bytes,
        sum(cu_hours_last_30_days) as cu_hours_last_30_days
    from projects

),

region_totals as (

    select
        count(case when project_count > 0 then 1 end) as regions_in_use_count,
        count(*) as region_count
    from regions

),

grant_totals as (

    select
        count(case when is_flagged_without_mfa then 1 end) as member_without_mfa_count,
        count(case when is_flagged_unused_key then 1 end) as unused_api_key_count,
        count(case when is_flagged_outside_share then 1 end) as outside_share_count,
        count(case when is_flagged_excess_admin then 1 end) as excess_admin_count
    from grants

),

reach_totals as (

    select count(case when is_reachable_from_anywhere then 1 end) as reachable_project_count
    from project_security

),

final as (

    select
        cast(project_totals.project_count as {{ dbt.type_bigint() }}) as project_count,
        cast(project_totals.branch_count as {{ dbt.type_bigint() }}) as branch_count,
        cast(project_totals.stale_branch_count as {{ dbt.type_bigint() }}) as stale_branch_count,
        cast(project_totals.stale_logical_size_bytes as {{ dbt.type_bigint() }}) as stale_logical_size_bytes,
        cast(project_totals.endpoint_count as {{ dbt.type_bigint() }}) as endpoint_count,
        cast(project_totals.database_count as {{ dbt.type_bigint() }}) as database_count,
        cast(project_totals.logical_size_bytes as {{ dbt.type_bigint() }}) as logical_size_bytes,
        cast(project_totals.cu_hours_last_30_days as double precision) as cu_hours_last_30_days,
        cast(region_totals.regions_in_use_count as {{ dbt.type_bigint() }}) as regions_in_use_count,
        cast(region_totals.region_count as {{ dbt.type_bigint() }}) as region_count,
        cast(grant_totals.member_without_mfa_count as {{ dbt.type_bigint() }}) as member_without_mfa_count,
        cast(grant_totals.unused_api_key_count as {{ dbt.type_bigint() }}) as unused_api_key_count,
        cast(grant_totals.outside_share_count as {{ dbt.type_bigint() }}) as outside_share_count,
        cast(grant_totals.excess_admin_count as {{ dbt.type_bigint() }}) as excess_admin_count,
        cast(reach_totals.reachable_project_count as {{ dbt.type_bigint() }}) as reachable_project_count,
        cast({{ var('stale_after_days') }} as {{ dbt.type_bigint() }}) as stale_after_days,
        cast({{ var('min_compute_size_cu') }} as double precision) as min_compute_size_cu,
        cast({{ var('idle_replica_after_days') }} as {{ dbt.type_bigint() }}) as idle_replica_after_days
    from project_totals
    cross join region_totals
    cross join grant_totals
    cross join reach_totals

)

select * from final
