"""Neon's bill in the warehouse (monthly_bill, project_costs, branch_costs' prices) against Neon's
formulas applied here, in Python, to what the simulator served: its daily and hourly consumption
for the days and hours the warehouse holds, converted and priced with the seeds' units, rates and
allowances as they are. Nothing is typed in: every expected figure comes from the served data and
the seeds; Neon's own worked examples are dbt unit tests (int_consumption_priced_to_project_days)."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime

import pytest
from expected import Billing, marts_timestamp, query, query_dicts, seed, unbilled_org_names
from neon_api_source import settings
from neon_elt.run import StepFailed, dbt
from neon_elt.targets import DuckDBTarget

# runs the pipeline and dbt: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

TOLERANCE = 1e-3  # Neon's formulas, to within 0.1%


def month_of(moment: datetime) -> date:
    return moment.date().replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


@pytest.fixture(scope="module")
def billing() -> Billing:
    return Billing()


@pytest.fixture(scope="module")
def loaded(demo_warehouse) -> tuple[set, set]:
    """The (project, day) pairs of daily consumption and the (project, hour) pairs of hourly
    consumption the warehouse holds: what the extract read (test_extract_costs checks that against
    Neon's reach); here, the bill is checked against what those days and hours served."""
    days = {
        (project_id, day)
        for project_id, day in query(
            demo_warehouse,
            "select distinct project_id, cast(timeframe_start as date) from neon_api_data.consumption",
        )
    }
    hours = {
        (project_id, start.astimezone(UTC).replace(tzinfo=None))
        for project_id, start in query(
            demo_warehouse,
            "select distinct project_id, timeframe_start from neon_api_data.consumption_hourly",
        )
    }
    assert hours, "the warehouse holds hourly consumption"
    return days, hours


@pytest.fixture(scope="module")
def neon_bill(demo_account, billing, loaded) -> dict[tuple, dict]:
    """(org, period start, metric) -> Neon's figures for the days and hours loaded."""
    days, hours = loaded
    plans = {org["id"]: org["plan"] for org in demo_account.organizations}
    raw = defaultdict(float)
    billable_branch_hours = defaultdict(float)
    projects = defaultdict(set)
    for project in demo_account.all_projects():
        org_id, project_id = project.get("org_id"), project["id"]
        if org_id not in demo_account.plan_org_ids():
            continue
        plan = plans[org_id]
        daily = {
            marts_timestamp(f["timeframe_start"]).date(): f for f in demo_account.consumption(project_id)
        }
        hourly = defaultdict(list)
        for frame in demo_account.consumption(project_id, "hourly"):
            start = marts_timestamp(frame["timeframe_start"])
            if (project_id, start) in hours:
                hourly[start.date()].append(frame)
        for day in sorted({d for p, d in days if p == project_id} | set(hourly)):
            period = day.replace(day=1)
            free = billing.allowance(plan, "extra_branches_month", period)
            for metric, value in (daily[day]["metrics"] if (project_id, day) in days else {}).items():
                raw[org_id, period, metric] += value
                projects[org_id, period, metric].add(project_id)
            # the free child branches, per project and hour: hour by hour where the hours loaded
            # hold the day's branch-hours, else the day as one 24-hour bucket
            hour_values = [f["metrics"]["extra_branches_month"] for f in hourly[day]]
            day_value = daily[day]["metrics"]["extra_branches_month"] if (project_id, day) in days else None
            if day_value is None:
                raw[org_id, period, "extra_branches_month"] += sum(hour_values)
                projects[org_id, period, "extra_branches_month"].add(project_id)
            included = free[0] if free else 0
            if day_value is None or sum(hour_values) == day_value:
                billable = sum(max(0, v - included) for v in hour_values)
            else:
                billable = max(0, day_value - included * 24)
            billable_branch_hours[org_id, period] += billable
    bill = {}
    for (org_id, period, metric), value in raw.items():
        plan = plans[org_id]
        quantity = value / billing.per[metric]
        allowance = billing.allowance(plan, metric, period)
        if metric == "extra_branches_month":
            billable = billable_branch_hours[org_id, period] / billing.per[metric]
        elif allowance and allowance[1] == "organization-month":
            billable = max(0.0, quantity - allowance[0])
        else:
            billable = quantity
        rate = billing.rate(plan, metric, period)
        bill[org_id, period, metric] = {
            "billing_plan": plan,
            "quantity": quantity,
            "billable_quantity": billable,
            "rate_usd": rate,
            "cost_usd": 0 if billable == 0 else (None if rate is None else billable * rate),
            "project_count": len(projects[org_id, period, metric]),
        }
    return bill


def test_the_monthly_bill_is_neons_formulas_applied_to_what_was_served(demo_warehouse, neon_bill):
    rows = query_dicts(demo_warehouse, "select * from marts.monthly_bill")
    actual = {(r["org_id"], r["billing_period_start"], r["metric_name"]): r for r in rows}
    assert set(actual) == set(neon_bill)
    for key, wanted in neon_bill.items():
        row = actual[key]
        assert row["billing_plan"] == wanted.pop("billing_plan"), key
        unpriced = {k for k, v in wanted.items() if v is None}  # a plan's metric without a rate
        assert {k: row[k] for k in unpriced} == {k: None for k in unpriced}, key
        got = {k: float(row[k]) for k in wanted if k not in unpriced}
        assert got == pytest.approx(
            {k: v for k, v in wanted.items() if k not in unpriced}, rel=TOLERANCE, abs=1e-6
        ), key
        assert float(row["allowance_quantity"]) == pytest.approx(
            float(row["quantity"]) - float(row["billable_quantity"]), abs=1e-5
        )
    # the demo shows both allowances at work, and prices every line of the rate card's plans
    branches = [w for (_, _, m), w in neon_bill.items() if m == "extra_branches_month"]
    assert any(0 < w["billable_quantity"] < w["quantity"] for w in branches), (
        "a project past the free branches"
    )
    card_plans = {row["plan"] for row in seed("neon_rate_card")}
    assert all(r["cost_usd"] is not None for r in rows if r["billing_plan"] in card_plans), "an unpriced line"


def test_each_organizations_bill_is_totalled_once_in_org_bills(demo_warehouse, neon_bill):
    """org_bills, the totals the report and `make demo` show: each organization's period is
    Neon's lines added up, the priced part apart where a line has no rate."""
    expected = defaultdict(list)
    for (org_id, period, _), wanted in neon_bill.items():
        expected[org_id, period].append(wanted["cost_usd"])
    rows = query_dicts(demo_warehouse, "select * from marts.org_bills")
    assert {(r["org_id"], r["billing_period_start"]) for r in rows} == set(expected)
    for r in rows:
        costs = expected[r["org_id"], r["billing_period_start"]]
        priced = [cost for cost in costs if cost is not None]
        assert (r["line_count"], r["unpriced_line_count"]) == (len(costs), len(costs) - len(priced))
        assert float(r["priced_cost_usd"]) == pytest.approx(sum(priced), rel=TOLERANCE, abs=1e-6)
        assert (r["cost_usd"] is None) == (len(priced) < len(costs))
    for org_id in {org_id for org_id, _ in expected}:
        periods = sorted((r for r in rows if r["org_id"] == org_id), key=lambda r: r["billing_period_start"])
        complete = [r for r in periods if r["is_period_complete"]]
        assert [r for r in periods if r["is_last_complete_period"]] == complete[-1:]
        assert [r for r in periods if r["is_last_incomplete_period"]] == [
            r for r in periods if not r["is_period_complete"]
        ][-1:]


def test_organizations_says_which_organization_has_a_bill(demo_account, demo_warehouse, neon_bill):
    """marts.organizations.has_bill, what the summary, the report and the notebook read to name the
    organizations without a bill: those whose plan has no consumption history."""
    unbilled = unbilled_org_names(demo_account)
    assert unbilled, "the demo has an organization without a bill"
    rows = query_dicts(demo_warehouse, "select org_id, org_name, has_bill from marts.organizations")
    assert {r["org_id"] for r in rows if r["has_bill"]} == {org_id for org_id, _, _ in neon_bill}
    assert sorted(r["org_name"] for r in rows if not r["has_bill"]) == unbilled


def test_a_period_is_complete_once_neon_closed_it_and_the_warehouse_holds_all_of_it(demo_warehouse, loaded):
    days, _ = loaded
    first_day = {
        org_id: first
        for org_id, first in query(
            demo_warehouse,
            "select org_id, min(cast(timeframe_start as date)) from neon_api_data.consumption group by 1",
        )
    }
    ((observed,),) = query(demo_warehouse, "select max(observed_at) from marts.branch_costs")
    rows = query_dicts(
        demo_warehouse,
        "select distinct org_id, billing_period_start, billing_period_end, is_period_complete from marts.monthly_bill",
    )
    assert rows
    for row in rows:
        start = row["billing_period_start"]
        closed = next_month(start) <= observed.date()
        assert row["is_period_complete"] == (closed and first_day[row["org_id"]] <= start), row
    assert any(not r["is_period_complete"] and r["billing_period_end"] is None for r in rows), (
        "a running period"
    )
    assert any(r["is_period_complete"] for r in rows), "the demo holds a whole month"


def test_the_running_period_is_projected_at_its_pace(demo_warehouse):
    rows = query_dicts(
        demo_warehouse,
        "select org_id, quantity, projected_quantity, reported_until, billing_period_start "
        "from marts.monthly_bill where billing_period_end is null and metric_name = 'compute_unit_seconds'",
    )
    assert rows
    for row in rows:
        start = datetime.combine(row["billing_period_start"], datetime.min.time())
        ((first,),) = query(
            demo_warehouse,
            "select min(timeframe_start) from neon_api_data.consumption "
            "where org_id = ? and metric_name = 'compute_unit_seconds' and cast(period_start as date) = ?",
            [row["org_id"], row["billing_period_start"]],
        )
        reported = (row["reported_until"] - max(start, first.replace(tzinfo=None))).total_seconds() / 3600
        month_hours = (next_month(start.date()) - start.date()).days * 24
        assert float(row["projected_quantity"]) == pytest.approx(
            float(row["quantity"]) * month_hours / reported, rel=TOLERANCE
        )


def test_projects_add_up_to_the_bill(demo_warehouse):
    """Which project drove the bill: the projects' costs add up to each organization's period."""
    differences = query(
        demo_warehouse,
        """
        with projects as (
            select org_id, billing_period_start, sum(cost_usd) as cost from marts.project_costs group by all
        ), bill as (
            select org_id, billing_period_start, sum(cost_usd) as cost from marts.monthly_bill group by all
        )
        select bill.org_id, bill.billing_period_start, bill.cost, projects.cost
        from bill full outer join projects using (org_id, billing_period_start)
        where abs(coalesce(bill.cost, 0) - coalesce(projects.cost, 0)) > 0.01
        """,
    )
    assert differences == []
    (count,) = query(demo_warehouse, "select count(*) from marts.project_costs where cost_usd > 0")[0]
    assert count


def test_a_project_s_priced_cost_is_its_priced_kinds(demo_warehouse):
    """priced_cost_usd, which the report totals and orders by: the cost kinds that have a rate,
    added up; the whole cost where every kind has one."""
    rows = query_dicts(demo_warehouse, "select * from marts.project_costs")
    assert rows
    for r in rows:
        kinds = [
            r[kind]
            for kind in (
                "compute_cost_usd",
                "storage_cost_usd",
                "transfer_cost_usd",
                "extra_branches_cost_usd",
            )
        ]
        priced = sum(float(cost) for cost in kinds if cost is not None)
        assert float(r["priced_cost_usd"]) == pytest.approx(priced, rel=TOLERANCE, abs=1e-6), r["project_id"]
        if r["cost_usd"] is not None:
            assert r["priced_cost_usd"] == r["cost_usd"], r["project_id"]


def test_branch_costs_price_each_day_at_its_plans_rate(demo_account, demo_warehouse, billing):
    """With no price set, each branch's last 30 days are priced at the rate card's rates for the
    plan of each day's period: usage in the billing unit times the rate."""
    rows = query_dicts(demo_warehouse, "select * from marts.branch_costs")
    window = {r["window_start_date"] for r in rows}, {r["window_end_date"] for r in rows}
    assert len(window[0]) == len(window[1]) == 1
    start, end = window[0].pop(), window[1].pop()
    plans = {org["id"]: org["plan"] for org in demo_account.organizations}
    kinds = {
        "compute_unit_seconds": "compute",
        "public_network_transfer_bytes": "transfer",
        "private_network_transfer_bytes": "transfer",
    }
    priced = 0
    for row in rows:
        served = demo_account.branch_consumption(row["project_id"]).get(row["branch_id"], [])
        frames = [f for f in served if start <= marts_timestamp(f["timeframe_start"]).date() <= end]
        if not frames:
            assert row["estimated_cost_last_30_days"] is None
            continue
        cost = defaultdict(float)
        storage = 0.0
        for frame in frames:
            period = month_of(marts_timestamp(frame["timeframe_start"]))
            for metric, value in frame["metrics"].items():
                quantity = value / billing.per[metric]
                if value:  # nothing used costs nothing, priced or not
                    cost[kinds.get(metric, "storage")] += quantity * billing.rate(
                        plans[row["org_id"]], metric, period
                    )
                if metric not in kinds:
                    storage += quantity
        assert float(row["storage_gb_months_last_30_days"]) == pytest.approx(storage, rel=TOLERANCE)
        for kind in ("compute", "storage", "transfer"):
            assert row[f"estimated_{kind}_cost_last_30_days"] == pytest.approx(
                cost[kind], rel=TOLERANCE, abs=1e-9
            )
        assert row["estimated_cost_last_30_days"] == pytest.approx(
            sum(cost.values()), rel=TOLERANCE, abs=1e-9
        )
        priced += 1
    assert priced


def test_the_rate_card_and_allowances_name_every_metric_neon_reports(billing):
    """Each of Neon's metrics converts, and each paid plan the simulator draws has a rate for the
    metrics its plan offers: a plan's figures are never silently unpriced."""
    assert set(billing.per) == set(settings.CONSUMPTION_METRICS)
    for plan in {row["plan"] for row in billing.rates}:
        metrics = {row["metric_name"] for row in billing.rates if row["plan"] == plan}
        assert metrics >= set(settings.CONSUMPTION_METRICS) - {"private_network_transfer_bytes"}, plan


def test_a_price_that_is_not_a_number_stops_the_build(demo_warehouse, tmp_path, capfd):
    warehouse = tmp_path / "neon_api.duckdb"
    shutil.copyfile(demo_warehouse, warehouse)
    prices = json.dumps({"neon_prices": {"compute_unit_seconds": "cheap"}})
    with pytest.raises(StepFailed), DuckDBTarget(warehouse).build() as build:
        dbt(["run", "--select", "branch_costs", "--vars", prices], build)
    assert "the price of compute_unit_seconds must be a number of 0 or more" in capfd.readouterr().out
