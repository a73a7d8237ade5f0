with

source as (

    select * from {{ source('neon', 'operations') }}

),

renamed as (

    select
        -- ids
        id as operation_id,
        project_id,
        branch_id,
        endpoint_id,

        -- strings
        action as operation_action,
        status as operation_status,
        error as error_message,

        -- numerics
        failures_count,
        total_duration_ms,

        -- timestamps
        {{ to_utc('created_at') }} as created_at,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc('retry_at') }} as retry_at

    from source

)

select * from renamed
