-- Per-project permissions: each organization member's access to each project of the organization.
-- Permission levels take the live spec's names (VIEWER, EDITOR, ADMIN) whichever Neon sent: the
-- 2.7.3 names (CAN_VIEW, CAN_EDIT, CAN_MANAGE) mean the same. `email` is lower-cased, as members'
-- emails are, so that the two join.
with

source as (

    select * from {{ source('neon', 'project_members') }}

),

renamed as (

    select
        -- ids
        project_id,
        member_id,
        user_id,

        -- strings
        lower(trim(email)) as email,
        org_role,
        project_role,
        {{ project_permission_level('org_default_project_permission') }} as org_default_project_permission,
        {{ project_permission_level('explicit_project_permission') }} as explicit_project_permission,
        {{ project_permission_level('effective_project_permission') }} as effective_project_permission,
        grant_source,

        -- timestamps
        {{ to_utc('confirmed_at') }} as confirmed_at

    from source

)

select * from renamed
