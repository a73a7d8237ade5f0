"""The consumption history listings, per project (daily, hourly) and per branch."""

from __future__ import annotations

from .base import CONSUMPTION_LIMIT, CURSOR, ESTATE, ORG, TIMEFRAMES, Listing

# ----------------------------------------------------------------------------------- consumption
# The rows are flattened from each item's periods and timeframes (consumption.py), so the columns
# are the flattening's, not a spec schema's fields. `_dlt_id` is written by the source itself.
# How a run's consumption lands: it replaces, per organization, the timeframes from the first one
# it read on, and nothing before, so what Neon no longer serves (older than 60 days, 168 hours)
# stays. The rows go in as read, without dlt's deduplication by primary key: a page never repeats
# a row, and the deduplication is a ROW_NUMBER() over every row loaded, past DuckDB's load budget
# on a large account (9 million branch rows). The deletion needs only each organization's first
# timeframe.
CONSUMPTION_MERGE = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
    "destination_scope": (
        "EXISTS (SELECT 1 FROM (SELECT org_id, MIN(timeframe_start) AS since FROM {staging_table}"
        " GROUP BY org_id) AS reread WHERE reread.org_id = {table}.org_id"
        " AND {table}.timeframe_start >= reread.since)"
    ),
}
CONSUMPTION_COLUMNS = {
    "org_id": "text",
    "project_id": "text",
    "period_id": "text",
    "period_plan": "text",
    "period_start": "timestamp",
    "period_end": "timestamp",
    "timeframe_start": "timestamp",
    "timeframe_end": "timestamp",
    "metric_name": "text",
    "value": "bigint",
}
CONSUMPTION = Listing(
    table="consumption",
    reader=ESTATE,
    route="/consumption_history/v2/projects",
    label="consumption",
    envelope="projects",
    parent=ORG,
    paginator=CURSOR,
    page_limit=100,
    primary_key=("project_id", "timeframe_start", "metric_name"),
    required=("project_id", "timeframe_start", "metric_name"),
    disposition=CONSUMPTION_MERGE,
    carried=TIMEFRAMES,
    rate_limit=CONSUMPTION_LIMIT,
    columns=CONSUMPTION_COLUMNS,
)
CONSUMPTION_HOURLY = Listing(
    table="consumption_hourly",
    noun="hourly consumption",
    reader=ESTATE,
    route=CONSUMPTION.route,
    label=CONSUMPTION.label,
    envelope=CONSUMPTION.envelope,
    parent=ORG,
    paginator=CURSOR,
    page_limit=CONSUMPTION.page_limit,
    primary_key=CONSUMPTION.primary_key,
    required=CONSUMPTION.required,
    disposition=CONSUMPTION_MERGE,
    carried=TIMEFRAMES,
    rate_limit=CONSUMPTION_LIMIT,
    columns=CONSUMPTION_COLUMNS,
)
# The branch consumption's rows: the project consumption's, with the branch beside the project.
BRANCH_CONSUMPTION = Listing(
    table="branch_consumption",
    reader=ESTATE,
    route="/consumption_history/v2/branches",
    label="branch usage",
    envelope="branches",
    parent=ORG,
    paginator=CURSOR,
    page_limit=1_000,
    primary_key=("branch_id", "timeframe_start", "metric_name"),
    required=("project_id", "branch_id", "timeframe_start", "metric_name"),
    disposition=CONSUMPTION_MERGE,
    carried=TIMEFRAMES,
    rate_limit=CONSUMPTION_LIMIT,
    columns={
        **{k: v for k, v in CONSUMPTION_COLUMNS.items() if k in ("org_id", "project_id")},
        "branch_id": "text",
        **{k: v for k, v in CONSUMPTION_COLUMNS.items() if k not in ("org_id", "project_id")},
    },
)

# The listings of this module, in the order the source reads and loads them.
ROWS = (CONSUMPTION, CONSUMPTION_HOURLY, BRANCH_CONSUMPTION)
