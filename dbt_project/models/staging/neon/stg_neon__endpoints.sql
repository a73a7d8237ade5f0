-- The current version of each compute (dlt's scd2 history: `_dlt_valid_to` is NULL on it).
with

current_versions as (

    {{ dlt_current_versions(source('neon', 'endpoints')) }}

),

renamed as (

    select
        -- ids
        id as endpoint_id,
        project_id,
        branch_id,
        region_id,

        -- strings
        name as endpoint_name,
        host,
        type as endpoint_type,
        provisioner,
        pooler_mode,
        creation_source,
        compute_release_version,

        -- numerics
        autoscaling_limit_min_cu,
        autoscaling_limit_max_cu,
        suspend_timeout_seconds,

        -- booleans
        coalesce(pooler_enabled, false) as is_pooler_enabled,
        coalesce(disabled, false) as is_disabled,
        coalesce(passwordless_access, false) as is_passwordless_access,

        -- json
        settings,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('_dlt_valid_from') }} as version_valid_from

    from current_versions

)

select * from renamed
