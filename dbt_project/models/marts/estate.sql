-- The estate at a glance, in one row: the headline of the report, the notebook and the summary
-- `make demo` prints, the access review's flags in counts, and the thresholds this build applied.
-- Counts are bigint in every warehouse; sums are cast to it (DuckDB sums to hugeint, PostgreSQL
-- to numeric).
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
        {% for column in [
            'branch_count',
            'stale_branch_count',
            'stale_logical_size_bytes',
            'endpoint_count',
            'database_count',
            'logical_size_bytes',
        ] %}
            cast(coalesce(sum({{ column }}), 0) as {{ dbt.type_bigint() }}) as {{ column }},
        {% endfor %}
        cast(sum(cu_hours_last_30_days) as double precision) as cu_hours_last_30_days
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
        project_totals.*,
        region_totals.*,
        grant_totals.*,
        reach_totals.*,
        cast({{ var('stale_after_days') }} as {{ dbt.type_bigint() }}) as stale_after_days,
        cast({{ var('min_compute_size_cu') }} as double precision) as min_compute_size_cu,
        cast({{ var('idle_replica_after_days') }} as {{ dbt.type_bigint() }}) as idle_replica_after_days
    from project_totals
    cross join region_totals
    cross join grant_totals
    cross join reach_totals

)

select * from final
