{#-
    The rows of `model` form a forest: every non-null `parent_column` names an existing row (in the
    same `group_column`, when given), and every row is reached by walking down from a root (a row
    without a parent). A row in a cycle is never reached from a root. Fails with one row per
    offending node and the reason.
-#}
{% test is_acyclic_tree(model, column_name, parent_column, group_column=none) -%}

with recursive

nodes as (

    select
        {{ column_name }} as node_id,
        {{ parent_column }} as parent_id{% if group_column %},
        {{ group_column }} as group_id{% endif %}
    from {{ model }}

),

missing_parents as (

    select
        child.node_id,
        'parent ' || child.parent_id || ' does not exist' as problem
    from nodes as child
    left join nodes as parent
        on
            child.parent_id = parent.node_id
            {% if group_column %}and child.group_id = parent.group_id{% endif %}
    where child.parent_id is not null and parent.node_id is null

),

reachable as (

    select
        node_id,{% if group_column %}
        group_id,{% endif %}
        0 as depth
    from nodes
    where parent_id is null

    union all

    select
        child.node_id,{% if group_column %}
        child.group_id,{% endif %}
        reachable.depth + 1 as depth
    from nodes as child
    inner join reachable
        on
            child.parent_id = reachable.node_id
            {% if group_column %}and child.group_id = reachable.group_id{% endif %}
    -- ends the walk should the same node id appear twice in a tree
    where reachable.depth < 1000

),

unreachable as (

    select
        nodes.node_id,
        'not reached from a root: in a cycle or below a missing parent' as problem
    from nodes
    left join reachable
        on
            nodes.node_id = reachable.node_id
            {% if group_column %}and nodes.group_id = reachable.group_id{% endif %}
    where reachable.node_id is null

)

select * from missing_parents

union all

select * from unreachable

{%- endtest %}
