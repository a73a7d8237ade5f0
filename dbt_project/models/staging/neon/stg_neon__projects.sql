-- The current version of each project (dlt's scd2 history: `_dlt_valid_to` is NULL on it).
with

source as (

    select * from {{ source('neon', 'projects') }}

),

ranked as (

    select
        *,
        row_number() over (partition by id order by _dlt_valid_from desc) as recency_rank
    from source
    where _dlt_valid_to is null

),

current_versions as (

    select * from ranked
    where recency_rank = 1

),

renamed as (

    select
        -- ids
        id as project_id,
        org_id,
        region_id,
        owner_id,

        -- strings
        name as project_name,
        org_name,
        platform_id,
        provisioner,
        proxy_host,
        creation_source,

        -- numerics
        pg_version,
        branch_logical_size_limit_bytes,
        history_retention_seconds,

        -- booleans
        store_passwords as is_password_stored,

        -- json
        settings,
        default_endpoint_settings,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('maintenance_starts_at') }} as maintenance_starts_at,
        {{ to_utc('hipaa_enabled_at') }} as hipaa_enabled_at,
        {{ to_utc('_dlt_valid_from') }} as version_valid_from

    from current_versions

)

select * from renamed
