-- When the API last confirmed each listing: a project's branches and computes, a branch's
-- databases and roles (an incremental run re-reads only what Neon signals as changed).
with

source as (

    select * from {{ source('neon', 'confirmations') }}

),

renamed as (

    select
        -- ids
        object_id,
        project_id,
        case when object_kind = 'branch' then object_id end as branch_id,

        -- strings
        object_kind,
        reason as read_reason,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at,
        {{ to_utc('refresh_due_at') }} as refresh_due_at

    from source

)

select * from renamed
