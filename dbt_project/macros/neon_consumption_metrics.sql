{#- Written by `python -m neon_elt.dbt_facts` from extract/neon_api_source/settings.py
    (CONSUMPTION_METRICS, BRANCH_CONSUMPTION_METRICS): change them there. The metrics the
    extract asks Neon's consumption history for, in the order Neon's spec lists them: the
    columns of the consumption pivot; then those of the branch consumption. -#}
{% macro neon_consumption_metrics() -%}
    {{ return([
        'compute_unit_seconds',
        'root_branch_bytes_month',
        'child_branch_bytes_month',
        'instant_restore_bytes_month',
        'public_network_transfer_bytes',
        'private_network_transfer_bytes',
        'extra_branches_month',
        'snapshot_storage_bytes_month',
    ]) }}
{%- endmacro %}

{% macro neon_branch_consumption_metrics() -%}
    {{ return([
        'compute_unit_seconds',
        'root_branch_bytes_month',
        'child_branch_bytes_month',
        'instant_restore_bytes_month',
        'public_network_transfer_bytes',
        'private_network_transfer_bytes',
    ]) }}
{%- endmacro %}
