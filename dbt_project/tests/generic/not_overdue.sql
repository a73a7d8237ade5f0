{#-
    Rows past their due time (`column_name`, a UTC timestamp) by more than `grace_hours` (by
    default the dbt var `refresh_grace_hours`): the rolling refresh promised to read them again by
    then, so scheduled runs are not keeping up. Apply it with `config: {severity: warn}`: the rows
    are still the last the API returned.
-#}
{% test not_overdue(model, column_name, grace_hours=none) -%}
    {%- set grace_hours = var('refresh_grace_hours') if grace_hours is none else grace_hours %}

with

overdue as (

    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < {{ dbt.dateadd('hour', -grace_hours, to_utc(dbt.current_timestamp())) }}

)

select * from overdue

{%- endtest %}
