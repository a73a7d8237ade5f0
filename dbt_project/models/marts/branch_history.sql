{#- The fields whose change is named in `changed_columns`, in the order they are listed. -#}
{%- set tracked_columns = [
    'branch_name',
    'branch_state',
    'parent_branch_id',
    'is_default',
    'is_protected',
    'expires_at',
    'ttl_interval_seconds',
    'last_reset_at',
    'restore_status',
    'init_source',
    'creation_source',
] -%}

{#- The columns every kind of event carries, in the order the union stacks them. -#}
{%- set event_columns = [
    'branch_id',
    'project_id',
    'change_type',
    'recorded_at',
    'version_number',
    'changed_columns',
    'previous_branch_name',
    'branch_name',
    'branch_state',
    'parent_branch_id',
    'is_default',
    'is_protected',
    'created_at',
    'expires_at',
    'valid_from',
    'valid_to',
    'is_current_version',
    'is_deleted',
] -%}

with

versions as (

    select * from {{ ref('stg_neon__branch_versions') }}

),

deleted_branches as (

    select * from {{ ref('stg_neon__deleted_branches') }}

),

project_readings as (

    select * from {{ ref('stg_neon__project_readings') }}

),

last_reading as (

    -- the projects listing is read on every run: its latest reading is the warehouse's "now"
    select max(read_at) as observed_at from project_readings

),

sequenced as (

    select
        *,
        row_number() over (partition by branch_id order by valid_from) as version_number,
        row_number() over (partition by branch_id order by valid_from desc) as recency_rank,
        -- deleted: no version of the branch is current any more
        count(case when is_current_version then 1 end) over (partition by branch_id) = 0 as is_deleted
    from versions

),

compared as (

    select
        sequenced.*,
        previous.branch_name as previous_branch_name,
        {{ list_changed_columns(tracked_columns, 'sequenced', 'previous') }} as changed_columns
    from sequenced
    left join sequenced as previous
        on
            sequenced.branch_id = previous.branch_id
            and sequenced.version_number = previous.version_number + 1

),

version_events as (

    -- the first version of a branch records its creation, every later one a change
    select
        *,
        case when version_number = 1 then 'created' else 'changed' end as change_type,
        valid_from as recorded_at
    from compared

),

deletion_events as (

    -- a branch is deleted when its latest version stopped being current without a successor
    select
        *,
        'deleted' as change_type,
        valid_to as recorded_at
    from compared
    where recency_rank = 1 and valid_to is not null

),

unseen_deletions as (

    -- deleted branches no run saw alive: Neon listed them as restorable only
    select
        deleted_branches.branch_id,
        deleted_branches.project_id,
        'deleted' as change_type,
        deleted_branches.deleted_at as recorded_at,
        0 as version_number,
        cast(null as {{ dbt.type_string() }}) as changed_columns,
        cast(null as {{ dbt.type_string() }}) as previous_branch_name,
        deleted_branches.branch_name,
        cast(null as {{ dbt.type_string() }}) as branch_state,
        deleted_branches.parent_branch_id,
        false as is_default,
        cast(null as boolean) as is_protected,
        deleted_branches.created_at,
        deleted_branches.expires_at,
        cast(null as {{ dbt.type_timestamp() }}) as valid_from,
        cast(null as {{ dbt.type_timestamp() }}) as valid_to,
        false as is_current_version,
        true as is_deleted
    from deleted_branches
    left join versions
        on deleted_branches.branch_id = versions.branch_id
    where versions.branch_id is null

),

events as (

    select {{ event_columns | join(', ') }}
    from version_events

    union all

    select {{ event_columns | join(', ') }}
    from deletion_events

    union all

    select {{ event_columns | join(', ') }}
    from unseen_deletions

),

recovered as (

    -- Neon's word on a deletion, on the branch's last deletion event
    select
        events.*,
        deleted_branches.deleted_at,
        deleted_branches.deletion_method,
        deleted_branches.recoverable_until,
        coalesce(deleted_branches.recoverable_until > last_reading.observed_at, false) as is_restorable
    from events
    cross join last_reading
    left join deleted_branches
        on
            events.branch_id = deleted_branches.branch_id
            and events.change_type = 'deleted'
            and events.is_deleted

),

final as (

    select
        branch_id || '/v' || cast(version_number as {{ dbt.type_string() }}) || '/' || change_type
            as branch_event_id,
        branch_id,
        project_id,
        change_type,
        recorded_at,
        cast(version_number as {{ dbt.type_bigint() }}) as version_number,
        case
            when change_type = 'changed' then coalesce(changed_columns, 'other fields')
        end as changed_columns,
        case when change_type = 'changed' then previous_branch_name end as previous_branch_name,
        branch_name,
        branch_state,
        parent_branch_id,
        is_default,
        is_protected,
        created_at,
        expires_at,
        valid_from,
        valid_to,
        is_current_version,
        is_deleted,
        deleted_at,
        deletion_method,
        recoverable_until,
        is_restorable
    from recovered

)

select * from final
