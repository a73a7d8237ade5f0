{#-
    What the cost marts share: the window they sum over, the unit each consumption metric is
    priced in, and the estimated cost of a metric at the price the user set (dbt var
    `neon_prices`, in dbt_project.yml).
-#}

{#- The metrics of Neon's branch consumption: the first six of the project consumption's (its spec
    leaves out extra_branches_month and snapshot_storage_bytes_month). -#}
{% macro neon_branch_consumption_metrics() -%}
    {{ return(neon_consumption_metrics()[:6]) }}
{%- endmacro %}

{#- The unit each metric is priced in, and how many of the metric's own units make one: compute in
    CU-hours, storage in GiB-months, transfer in GiB (2^30 bytes), extra branches in branch-months. -#}
{% macro neon_price_units() -%}
    {{ return({
        'compute_unit_seconds': ('CU-hour', 3600),
        'root_branch_bytes_month': ('GiB-month', 1073741824),
        'child_branch_bytes_month': ('GiB-month', 1073741824),
        'instant_restore_bytes_month': ('GiB-month', 1073741824),
        'snapshot_storage_bytes_month': ('GiB-month', 1073741824),
        'public_network_transfer_bytes': ('GiB', 1073741824),
        'private_network_transfer_bytes': ('GiB', 1073741824),
        'extra_branches_month': ('branch-month', 1),
    }) }}
{%- endmacro %}

{#- The estimated cost of `value` (a sum of `metric`, in the metric's own unit) at the price the user
    set per priced unit; NULL when no price is set: a cost is never guessed. -#}
{% macro neon_cost(metric, value) -%}
    {%- set units = neon_price_units() -%}
    {%- if metric not in units -%}
        {{ exceptions.raise_compiler_error("neon_cost: no price unit for metric " ~ metric) }}
    {%- endif -%}
    {%- set prices = var('neon_prices', {}) -%}
    {%- set price = prices.get(metric) if prices is mapping else none -%}
    {%- if price is none -%}
        cast(null as double precision)
    {%- elif price is number and price is not boolean and price >= 0 -%}
        (cast({{ value }} as double precision) / {{ units[metric][1] }} * {{ price }})
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "neon_prices: the price of " ~ metric ~ " must be a number of 0 or more, per "
            ~ units[metric][0] ~ " (got " ~ price ~ ")"
        ) }}
    {%- endif -%}
{%- endmacro %}

{#- The window of the `_last_30_days` columns: the 30 complete UTC days before the day of
    `observed_at` (the run's start). Neon revises the running day until it ends, so the extract
    never loads it. -#}
{% macro cost_window_start(observed_at) -%}
    cast({{ dbt.dateadd('day', -30, 'cast(' ~ observed_at ~ ' as date)') }} as date)
{%- endmacro %}

{% macro cost_window_end(observed_at) -%}
    cast({{ dbt.dateadd('day', -1, 'cast(' ~ observed_at ~ ' as date)') }} as date)
{%- endmacro %}

{% macro in_cost_window(day, observed_at) -%}
    ({{ day }} >= {{ cost_window_start(observed_at) }} and {{ day }} <= {{ cost_window_end(observed_at) }})
{%- endmacro %}
