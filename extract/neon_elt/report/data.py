"""The marts the report shows, read once: every figure comes from a dbt mart (tested and
documented in dbt_project/models/marts); this module orders and selects rows, and adds up one
chart's series (the daily consumption of all projects) rather than hand the page every project's.

Every text is made showable as it is read (views.showable): a name Neon serves may hold control
characters, bidirectional overrides or 100 KB, and no part of the page should meet them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from ..views import UNBILLED_ORGS, showable

Rows = list[dict[str, Any]]


class Marts(NamedTuple):
    estate: Rows  # the headline figures and the thresholds applied, one row (marts.estate)
    regions: Rows  # regional_footprint, most projects first
    branches: Rows  # project_branch_inventory: age and status of every branch
    stale: Rows  # stale_branches, in clean-up order
    projects: Rows  # projects, largest first
    daily: Rows  # daily_consumption per day and metric, all projects
    bill: Rows  # monthly_bill, a line per organization, period and metric
    org_bills: Rows  # org_bills, a row per organization and period
    unbilled: Rows  # the organizations without a bill (views.UNBILLED_ORGS)
    project_costs: Rows  # project_costs, most expensive first within a period
    branch_costs: Rows  # branch_costs, most expensive first
    hygiene: Rows  # compute_hygiene, most findings first
    access: Rows  # org_access, a row per organization and one for the personal account
    origin: str | None  # the API the warehouse was loaded from


QUERIES = {
    "estate": "select * from marts.estate",
    "regions": "select * from marts.regional_footprint order by project_count desc, region_id",
    "branches": "select age_days, is_stale, is_default from marts.project_branch_inventory",
    "stale": "select * from marts.stale_branches order by cleanup_rank",
    "projects": "select * from marts.projects order by logical_size_bytes desc nulls last, project_id",
    # a chart's series: the day's quantity of every project, drawn as one line per metric
    "daily": """
        select consumption_date, metric_name, billing_unit, sum(quantity) as total
        from marts.daily_consumption
        group by consumption_date, metric_name, billing_unit
        order by consumption_date""",
    "bill": "select * from marts.monthly_bill order by org_name, org_id, billing_period_start, metric_name",
    "org_bills": "select * from marts.org_bills order by org_name, org_id, billing_period_start",
    "unbilled": UNBILLED_ORGS,
    # most expensive first; a project with some usage unpriced, by its priced part
    "project_costs": """
        select * from marts.project_costs
        order by billing_period_start, priced_cost_usd desc, project_name, project_id""",
    "branch_costs": """
        select * from marts.branch_costs
        order by estimated_cost_last_30_days desc nulls last, cu_hours_last_30_days desc nulls last, branch_id""",
    "hygiene": """
        select * from marts.compute_hygiene
        order by flag_count desc, cu_hours_last_30_days desc nulls last, endpoint_id""",
    "access": """
        select * from marts.org_access
        order by is_personal_account, coalesce(org_name, org_id)""",
}


def plain(value: Any) -> Any:
    """Decimals (PostgreSQL's numeric sums) as int or float, so charts and arithmetic treat them
    alike; texts as they may be shown."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, str):
        return showable(value)
    return value


def read(target: Any) -> Marts:
    direct = target.direct()
    found = {
        name: [{k: plain(v) for k, v in row.items()} for row in direct.rows(sql)]
        for name, sql in QUERIES.items()
    }
    origin = direct.read_origin()
    return Marts(**found, origin=None if origin is None else showable(origin))
