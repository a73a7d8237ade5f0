-- The current version of each project (dlt's scd2 history: `_dlt_valid_to` is NULL on it).
with

current_versions as (

    {{ dlt_current_versions(source('neon', 'projects')) }}

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

        -- who can connect, from `settings` (absent settings: Neon's defaults, open and off)
        coalesce(
            {{ json_array_length('settings', ['allowed_ips', 'ips']) }}, 0
        ) as allowed_ip_count,
        coalesce(
            cast({{ json_text('settings', ['allowed_ips', 'protected_branches_only']) }} as boolean), false
        ) as is_ip_allow_list_protected_branches_only,
        coalesce(cast({{ json_text('settings', ['block_public_connections']) }} as boolean), false)
            as is_public_connection_blocked,
        coalesce(cast({{ json_text('settings', ['block_vpc_connections']) }} as boolean), false)
            as is_vpc_connection_blocked,
        coalesce(cast({{ json_text('settings', ['enable_logical_replication']) }} as boolean), false)
            as is_logical_replication_enabled,
        coalesce(cast({{ json_text('settings', ['hipaa']) }} as boolean), hipaa_enabled_at is not null)
            as is_hipaa_enabled,
        {{ json_text('settings', ['audit_log_level']) }} as audit_log_level,

        -- per-project quotas, from `settings.quota` (Neon: zero or absent is unlimited: NULL here)
        {% for quota in neon_project_quotas() %}
            nullif(cast({{ json_text('settings', ['quota', quota]) }} as bigint), 0) as quota_{{ quota }},
        {% endfor %}

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('maintenance_starts_at') }} as maintenance_starts_at,
        {{ to_utc('hipaa_enabled_at') }} as hipaa_enabled_at,
        {{ to_utc('_dlt_valid_from') }} as version_valid_from

    from current_versions

)

select * from renamed
