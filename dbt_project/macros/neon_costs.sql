{#-
    What the cost models share: the window the `_last_30_days` columns sum over, and the rate of a
    metric: the rate card's (seed `neon_rate_card`) unless the user set a price (dbt var
    `neon_prices`, in dbt_project.yml). Units and conversions are the seed `neon_metric_units`.
-#}

{#- An amount (a quantity in its billing unit, or USD) to the sixth decimal, half away from zero in
    every warehouse. A double half way between two sixth decimals is a hair off in binary: cast
    directly, DuckDB rounds what the bits say and PostgreSQL what their 15 digits say. Through 12
    decimals, both round the half. -#}
{% macro neon_amount(expression) -%}
    cast(cast({{ expression }} as decimal(38, 12)) as decimal(38, 6))
{%- endmacro %}

{#- The sum of a column of doubles, the same to the last bit in whatever order its rows arrive (a
    rerun, an incremental build and a full one meet a branch's days in different orders): each term
    to 12 decimals, added as a decimal. `over`: a window (`partition by ...`) to sum over, if any. -#}
{% macro neon_exact_sum(expression, over=none) -%}
    cast(
        sum(cast({{ expression }} as decimal(38, 12))){% if over %} over ({{ over }}){% endif %}
        as double precision
    )
{%- endmacro %}

{#- The rate (USD per billing unit, `neon_metric_units.billing_unit`) of the metric in the SQL
    expression `metric_column`: the price set in the dbt var `neon_prices` (negotiated prices, for
    every plan) where one is set, else `card_rate` (the rate card's rate for the period's plan). -#}
{% macro neon_rate(metric_column, card_rate) -%}
    coalesce({{ neon_price_override(metric_column) }}, {{ card_rate }})
{%- endmacro %}

{#- The price set in `neon_prices` for the metric in `metric_column`; NULL where none is set. A
    price must be a number of 0 or more, per billing unit, for a metric Neon reports. -#}
{% macro neon_price_override(metric_column) -%}
    {%- set prices = var('neon_prices', {}) -%}
    {%- set overrides = [] -%}
    {%- for metric, price in (prices.items() if prices is mapping else []) -%}
        {%- if metric not in neon_consumption_metrics() -%}
            {{ exceptions.raise_compiler_error(
                "neon_prices: " ~ metric ~ " is not one of Neon's metrics: "
                ~ neon_consumption_metrics() | join(", ")
            ) }}
        {%- elif price is number and price is not boolean and price >= 0 -%}
            {%- do overrides.append("when '" ~ metric ~ "' then cast(" ~ price ~ " as double precision)") -%}
        {%- elif price is not none -%}
            {{ exceptions.raise_compiler_error(
                "neon_prices: the price of " ~ metric ~ " must be a number of 0 or more, in USD per "
                ~ "billing unit (got " ~ price ~ ")"
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if overrides -%}
        (case {{ metric_column }} {{ overrides | join(" ") }} end)
    {%- else -%}
        cast(null as double precision)
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

{#- The join condition that finds, in `rates` (neon_billing_rates), the row for the plan, metric and
    billing period of `priced`: the one in force on the period's first day. -#}
{% macro billing_rates_in_force(rates, priced) -%}
    {{ rates }}.plan = {{ priced }}.billing_plan
    and {{ rates }}.metric_name = {{ priced }}.metric_name
    and cast({{ priced }}.billing_period_start as date) >= {{ rates }}.effective_from
    and (
        {{ rates }}.effective_until is null
        or cast({{ priced }}.billing_period_start as date) < {{ rates }}.effective_until
    )
{%- endmacro %}

{#- Neon's billing model in force for each plan and metric from one change to the next, as a query:
    the rate card's rate (seed neon_rate_card) and the plan's allowance (seed
    neon_plan_allowances), each as of the day the row takes effect. A period is priced by the row
    in force at its start (billing_rates_in_force). A macro rather than a model, so that the cost
    models read the seeds directly and their unit tests price with the real rate card. -#}
{% macro neon_billing_rates() -%}
with

rate_card as (

    select * from {{ ref('neon_rate_card') }}

),

allowances as (

    select * from {{ ref('neon_plan_allowances') }}

),

metric_units as (

    select * from {{ ref('neon_metric_units') }}

),

change_days as (

    -- every day a plan's rate or allowance changes
    select
        plan,
        effective_from
    from rate_card
    union
    select
        plan,
        effective_from
    from allowances

),

versions as (

    select
        change_days.plan,
        metric_units.metric_name,
        change_days.effective_from,
        lead(change_days.effective_from) over (
            partition by change_days.plan, metric_units.metric_name order by change_days.effective_from
        ) as effective_until
    from change_days
    cross join metric_units

),

rates_in_force as (

    select
        versions.plan,
        versions.metric_name,
        versions.effective_from,
        rate_card.rate_usd,
        rate_card.effective_from as rate_effective_from,
        row_number() over (
            partition by versions.plan, versions.metric_name, versions.effective_from
            order by rate_card.effective_from desc
        ) as recency
    from versions
    left join rate_card
        on
            versions.plan = rate_card.plan
            and versions.metric_name = rate_card.metric_name
            and versions.effective_from >= rate_card.effective_from

),

allowances_in_force as (

    select
        versions.plan,
        versions.metric_name,
        versions.effective_from,
        allowances.included_quantity,
        allowances.included_per,
        row_number() over (
            partition by versions.plan, versions.metric_name, versions.effective_from
            order by allowances.effective_from desc
        ) as recency
    from versions
    left join allowances
        on
            versions.plan = allowances.plan
            and versions.metric_name = allowances.metric_name
            and versions.effective_from >= allowances.effective_from

),

final as (

    select
        versions.plan,
        versions.metric_name,
        versions.effective_from,
        versions.effective_until,
        rates_in_force.rate_usd,
        rates_in_force.rate_effective_from,
        allowances_in_force.included_quantity,
        allowances_in_force.included_per
    from versions
    inner join rates_in_force
        on
            versions.plan = rates_in_force.plan
            and versions.metric_name = rates_in_force.metric_name
            and versions.effective_from = rates_in_force.effective_from
            and rates_in_force.recency = 1
    inner join allowances_in_force
        on
            versions.plan = allowances_in_force.plan
            and versions.metric_name = allowances_in_force.metric_name
            and versions.effective_from = allowances_in_force.effective_from
            and allowances_in_force.recency = 1

)

select * from final
{%- endmacro %}
