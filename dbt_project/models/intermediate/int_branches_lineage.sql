-- Where each branch sits in its project's tree: its root, depth, parent and the path of names from
-- the root, by a recursive walk down from the roots; and how many children it has.
with recursive

branches as (

    select * from {{ ref('stg_neon__branches') }}

),

roots as (

    -- a root has no parent, or a parent that is not among the current branches
    select
        child.branch_id,
        child.branch_name
    from branches as child
    left join branches as parent
        on child.parent_branch_id = parent.branch_id
    where parent.branch_id is null

),

lineage as (

    select
        branch_id,
        branch_id as root_branch_id,
        branch_name as root_branch_name,
        0 as branch_depth,
        cast(branch_name as {{ dbt.type_string() }}) as lineage_path
    from roots

    union all

    select
        child.branch_id,
        parent.root_branch_id,
        parent.root_branch_name,
        parent.branch_depth + 1 as branch_depth,
        cast(parent.lineage_path || ' / ' || child.branch_name as {{ dbt.type_string() }}) as lineage_path
    from branches as child
    inner join lineage as parent
        on child.parent_branch_id = parent.branch_id
    -- a guard for bad data only: a cycle is never reached from a root, and Neon's trees are shallow
    where parent.branch_depth < 64

),

children as (

    select
        parent_branch_id as branch_id,
        count(*) as child_branch_count
    from branches
    where parent_branch_id is not null
    group by parent_branch_id

),

final as (

    select
        lineage.branch_id,
        branches.project_id,
        branches.parent_branch_id,
        parents.branch_name as parent_branch_name,
        lineage.root_branch_id,
        lineage.root_branch_name,
        lineage.branch_depth,
        lineage.lineage_path,
        coalesce(children.child_branch_count, 0) as child_branch_count
    from lineage
    inner join branches
        on lineage.branch_id = branches.branch_id
    left join branches as parents
        on branches.parent_branch_id = parents.branch_id
    left join children
        on lineage.branch_id = children.branch_id

)

select * from final
