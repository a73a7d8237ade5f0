{#-
    The build's last step (on-run-end): drops what earlier versions of this project built under
    names it no longer uses, so that a warehouse one of them built does not keep a stale copy
    beside the renamed model. Only the relations named here, in the schema named.
-#}
{% macro drop_retired_relations() %}
    {%- set retired = {
        'staging': [
            'stg_neon__project_snapshots', 'stg_neon__project_snapshot_readings',
            'stg_neon__branch_snapshots', 'stg_neon__branch_snapshot_readings',
            'stg_neon__endpoint_snapshots', 'stg_neon__endpoint_snapshot_readings',
        ],
    } -%}
    {%- if execute -%}
        {%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
            | map(attribute='name') | list -%}
        {%- for schema, names in retired.items() -%}
            {%- for name in names -%}
                {%- if name in models -%}
                    {{ exceptions.raise_compiler_error(name ~ ' is a model again: take it off the retired list') }}
                {%- endif -%}
                {%- set relation = adapter.get_relation(database=target.database, schema=schema, identifier=name) -%}
                {%- if relation is not none -%}
                    {%- do log('dropping ' ~ relation ~ ': a model this version of neon-elt renamed', info=true) -%}
                    {%- do adapter.drop_relation(relation) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
