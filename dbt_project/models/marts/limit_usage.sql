-- Per limit Neon lets a project or organization set: each project's quotas (`settings.quota`)
-- against the counters of its billing period so far, and each organization's monthly spending
-- limit against its bill so far (monthly_bill's running period). Near: at least the dbt var
-- `near_limit_share` of it used; over: all of it. Limits set to unlimited have no row.
with

projects as (

    select * from {{ ref('stg_neon__projects') }}

),

project_rollup as (

    select * from {{ ref('int_projects_rollup') }}

),

largest_branches as (

    -- Neon enforces the logical size quota per branch: the largest branch is the nearest
    select
        project_id,
        max(logical_size_bytes) as largest_branch_logical_size_bytes
    from {{ ref('int_branches_rollup') }}
    group by project_id

),

project_usage as (

    select
        project_rollup.*,
        largest_branches.largest_branch_logical_size_bytes
    from project_rollup
    left join largest_branches
        on project_rollup.project_id = largest_branches.project_id

),

quotas as (

    {% for quota, usage in neon_project_quotas().items() %}
        select
            'project' as scope_type,
            projects.project_id as scope_id,
            projects.org_id,
            projects.project_id,
            '{{ quota }}' as limit_name,
            '{{ "bytes" if quota.endswith("_bytes") else "seconds" }}' as unit,
            cast(projects.quota_{{ quota }} as double precision) as limit_value,
            cast(coalesce(project_usage.{{ usage }}, 0) as double precision) as usage_value,
            cast(null as double precision) as projected_usage_value,
            project_usage.observed_at
        from projects
        inner join project_usage
            on projects.project_id = project_usage.project_id
        where projects.quota_{{ quota }} is not null
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

bills as (

    select
        org_id,
        billing_period_start,
        sum(cost_usd) as cost_usd,
        sum(projected_cost_usd) as projected_cost_usd,
        row_number() over (partition by org_id order by billing_period_start desc) as recency_rank
    from {{ ref('monthly_bill') }}
    group by org_id, billing_period_start

),

running_bills as (

    -- each organization's latest billing period the warehouse holds: the running one
    select * from bills
    where recency_rank = 1

),

spending_limits as (

    select
        'organization' as scope_type,
        limits.org_id as scope_id,
        limits.org_id,
        cast(null as {{ dbt.type_string() }}) as project_id,
        'spending_limit_usd' as limit_name,
        'USD' as unit,
        cast(limits.spending_limit_usd as double precision) as limit_value,
        cast(coalesce(running_bills.cost_usd, 0) as double precision) as usage_value,
        cast(running_bills.projected_cost_usd as double precision) as projected_usage_value,
        limits.confirmed_at as observed_at
    from {{ ref('stg_neon__organization_spending_limits') }} as limits
    left join running_bills
        on limits.org_id = running_bills.org_id
    where limits.spending_limit_usd is not null

),

limits as (

    select * from quotas
    union all
    select * from spending_limits

),

final as (

    select
        scope_type,
        scope_id,
        org_id,
        project_id,
        limit_name,
        unit,
        limit_value,
        usage_value,
        projected_usage_value,
        usage_value / limit_value as usage_share,
        usage_value >= {{ var('near_limit_share') }} * limit_value as is_near_limit,
        usage_value >= limit_value as is_over_limit,
        observed_at
    from limits

)

select * from final
