-- Per organization the API key sees: which of its access listings the key could read, so that a
-- blank in access_review reads as none only where the listing was read; and whether it has a bill.
with

organizations as (

    select * from {{ ref('stg_neon__organizations') }}

),

coverage as (

    select * from {{ ref('int_access_coverage_pivoted_to_organizations') }}

),

billed as (

    select distinct org_id from {{ ref('org_bills') }}

),

final as (

    select
        organizations.org_id,
        organizations.org_name,
        coverage.are_members_visible,
        coverage.are_api_keys_visible,
        coverage.are_vpc_endpoints_visible,
        coverage.not_visible,
        billed.org_id is not null as has_bill
    from organizations
    left join coverage
        on organizations.org_id = coverage.org_id
    left join billed
        on organizations.org_id = billed.org_id

)

select * from final
