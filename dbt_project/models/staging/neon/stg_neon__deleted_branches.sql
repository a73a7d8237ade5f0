-- Deleted branches Neon can still restore, or could when a run last saw them, with how and when
-- each went, as Neon's `recovery` says.
with

source as (

    select * from {{ source('neon', 'deleted_branches') }}

),

renamed as (

    select
        -- ids
        id as branch_id,
        project_id,
        parent_id as parent_branch_id,

        -- strings
        name as branch_name,
        deletion_method,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('expires_at') }} as expires_at,
        {{ to_utc('deleted_at') }} as deleted_at,
        {{ to_utc('recoverable_until') }} as recoverable_until,
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
