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

with

versions as (

    select * from {{ ref('stg_neon__branch_versions') }}

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

events as (

    select * from version_events

    union all

    select * from deletion_events

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
        is_deleted
    from events

)

select * from final
