{#- The keys of a project's `settings.quota` (Neon's ProjectQuota) and the column of
    int_projects_rollup each is measured against: the project's counters of the billing period
    (Neon enforces each quota on the project metric of the same name), and for
    `logical_size_bytes`, enforced per branch, its largest branch (`largest_branch_logical_size_bytes`). -#}
{% macro neon_project_quotas() -%}
    {{ return({
        'active_time_seconds': 'active_time_seconds',
        'compute_time_seconds': 'cpu_used_seconds',
        'written_data_bytes': 'written_data_bytes',
        'data_transfer_bytes': 'data_transfer_bytes',
        'logical_size_bytes': 'largest_branch_logical_size_bytes',
    }) }}
{%- endmacro %}
