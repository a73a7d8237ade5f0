{#- A project permission level by the live spec's names (VIEWER, EDITOR, ADMIN): Neon's 2.7.3
    client named them CAN_VIEW, CAN_EDIT and CAN_MANAGE. Any other value passes as it came. -#}
{% macro project_permission_level(column) -%}
    case {{ column }}
        when 'CAN_VIEW' then 'VIEWER'
        when 'CAN_EDIT' then 'EDITOR'
        when 'CAN_MANAGE' then 'ADMIN'
        else {{ column }}
    end
{%- endmacro %}
