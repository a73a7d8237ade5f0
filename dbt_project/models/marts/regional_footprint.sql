with

listed_regions as (

    select * from {{ ref('stg_neon__regions') }}

),

project_rollup as (

    select * from {{ ref('int_projects_rollup') }}

),

unlisted_regions as (

    -- a region that holds projects but that Neon no longer lists, so that the totals always add up
    -- to the whole account
    select distinct
        project_rollup.region_id,
        project_rollup.region_id as region_name,
        split_part(project_rollup.region_id, '-', 1) as cloud_provider,
        cast(null as double precision) as geo_latitude,
        cast(null as double precision) as geo_longitude,
        false as is_default_region
    from project_rollup
    left join listed_regions
        on project_rollup.region_id = listed_regions.region_id
    where listed_regions.region_id is null

),

regions as (

    select
        region_id,
        region_name,
        cloud_provider,
        geo_latitude,
        geo_longitude,
        is_default_region
    from listed_regions

    union all

    select
        region_id,
        region_name,
        cloud_provider,
        geo_latitude,
        geo_longitude,
        is_default_region
    from unlisted_regions

),

per_region as (

    select
        region_id,
        count(*) as project_count,
        cast(sum(branch_count) as {{ dbt.type_bigint() }}) as branch_count,
        cast(sum(database_count) as {{ dbt.type_bigint() }}) as database_count,
        cast(sum(endpoint_count) as {{ dbt.type_bigint() }}) as endpoint_count,
        cast(sum(active_endpoint_count) as {{ dbt.type_bigint() }}) as active_endpoint_count,
        cast(sum(idle_endpoint_count) as {{ dbt.type_bigint() }}) as idle_endpoint_count,
        cast(sum(logical_size_bytes) as {{ dbt.type_bigint() }}) as total_logical_size_bytes,
        cast(sum(synthetic_storage_size_bytes) as {{ dbt.type_bigint() }}) as total_synthetic_storage_size_bytes,
        cast(sum(compute_time_seconds) as {{ dbt.type_bigint() }}) as total_compute_time_seconds
    from project_rollup
    group by region_id

),

pg_versions as (

    select
        region_id,
        pg_version,
        count(*) as project_count
    from project_rollup
    group by region_id, pg_version

),

pg_version_mix as (

    select
        region_id,
        {{ dbt.listagg(
            "'pg' || cast(pg_version as " ~ dbt.type_string() ~ ") || ': ' || cast(project_count as "
            ~ dbt.type_string() ~ ")",
            "', '",
            "order by pg_version"
        ) }} as pg_version_mix
    from pg_versions
    group by region_id

),

account as (

    select
        count(*) as project_count,
        sum(logical_size_bytes) as logical_size_bytes,
        sum(compute_time_seconds) as compute_time_seconds
    from project_rollup

),

final as (

    select
        regions.region_id,
        regions.region_name,
        regions.cloud_provider,
        regions.geo_latitude,
        regions.geo_longitude,
        regions.is_default_region,
        coalesce(per_region.project_count, 0) as project_count,
        coalesce(per_region.branch_count, 0) as branch_count,
        coalesce(per_region.database_count, 0) as database_count,
        coalesce(per_region.endpoint_count, 0) as endpoint_count,
        coalesce(per_region.active_endpoint_count, 0) as active_endpoint_count,
        coalesce(per_region.idle_endpoint_count, 0) as idle_endpoint_count,
        pg_version_mix.pg_version_mix,
        coalesce(per_region.total_logical_size_bytes, 0) as total_logical_size_bytes,
        coalesce(per_region.total_synthetic_storage_size_bytes, 0) as total_synthetic_storage_size_bytes,
        coalesce(per_region.total_compute_time_seconds, 0) as total_compute_time_seconds,
        cast(coalesce(per_region.project_count, 0) as double precision)
        / nullif(account.project_count, 0) as share_of_projects,
        cast(coalesce(per_region.total_logical_size_bytes, 0) as double precision)
        / nullif(account.logical_size_bytes, 0) as share_of_logical_size,
        cast(coalesce(per_region.total_compute_time_seconds, 0) as double precision)
        / nullif(account.compute_time_seconds, 0) as share_of_compute_time
    from regions
    cross join account
    left join per_region
        on regions.region_id = per_region.region_id
    left join pg_version_mix
        on regions.region_id = pg_version_mix.region_id

)

select * from final
