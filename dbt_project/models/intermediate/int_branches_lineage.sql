-- Where each branch sits in its project's tree: root, depth and the path of names from the root.
with recursive

branches as (

    select * from {{ ref('stg_neon__branches') }}

),

roots as (

    -- a branch is a root when it has no parent, or its parent is not among the current branches
    select child.*
    from branches as child
    left join branches as parent
        on child.parent_branch_id = parent.branch_id
    where parent.branch_id is null

),

lineage as (

    select
        branch_id,
        project_id,
        branch_id as root_branch_id,
        branch_name as root_branch_name,
        0 as branch_depth,
        cast(branch_name as varchar) as lineage_path
    from roots

    union all

    select
        child.branch_id,
        child.project_id,
        parent.root_branch_id,
        parent.root_branch_name,
        parent.branch_depth + 1 as branch_depth,
        parent.lineage_path || ' / ' || child.branch_name as lineage_path
    from branches as child
    inner join lineage as parent
        on child.parent_branch_id = parent.branch_id
    -- a guard against a cycle in bad data; Neon's trees are far shallower
    where parent.branch_depth < 64

),

final as (

    select
        lineage.branch_id,
        lineage.project_id,
        branches.parent_branch_id,
        parents.branch_name as parent_branch_name,
        lineage.root_branch_id,
        lineage.root_branch_name,
        lineage.branch_depth,
        lineage.lineage_path
    from lineage
    inner join branches
        on lineage.branch_id = branches.branch_id
    left join branches as parents
        on branches.parent_branch_id = parents.branch_id

)

select * from final
