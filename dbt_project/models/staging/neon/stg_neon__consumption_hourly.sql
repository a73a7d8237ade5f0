with

source as (

    select * from {{ source('neon', 'consumption_hourly') }}

),

renamed as (

    select
        -- ids
        project_id,
        org_id,
        period_id as billing_period_id,

        -- strings
        period_plan as billing_plan,
        metric_name,

        -- numerics
        value as metric_value,

        -- dates and timestamps
        cast({{ to_utc('timeframe_start') }} as date) as consumption_date,
        {{ to_utc('timeframe_start') }} as timeframe_start,
        {{ to_utc('timeframe_end') }} as timeframe_end,
        {{ to_utc('period_start') }} as billing_period_start,
        {{ to_utc('period_end') }} as billing_period_end

    from source

)

select * from renamed
