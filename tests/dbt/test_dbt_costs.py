"""The cost and usage marts (branch_costs, compute_hygiene, project_daily_usage, and what
stale_branches and projects gained) against numbers computed here from what the simulator
served. Nothing is typed in: windows count from the marts' own `observed_at`, thresholds and
prices come from dbt_project.yml or from the vars a test passes."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from expected import Billing, dbt_vars, marts_timestamp, naive_utc, query, query_dicts
from neon_api_source import settings
from neon_elt.run import dbt, elt
from neon_elt.targets import DuckDBTarget
from neon_simulator import PRESETS, Account, Simulator
from neon_simulator.reference import BRANCH_CONSUMPTION_PLANS
from suite import REPO, client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

# ------------------------------------------------------------------------ the daily usage trend


def served_counters(account: Account) -> dict[str, dict]:
    """Per current project: its synthetic storage size, and per current branch its logical size,
    compute time and written data, as the API serves them now."""
    return {
        project["id"]: {
            "synthetic": project.get("synthetic_storage_size"),
            "branches": {
                b["id"]: (b.get("logical_size"), b["compute_time_seconds"], b["written_data_bytes"])
                for b in account.branches(project["id"])
            },
        }
        for project in account.all_projects()
    }


@pytest.fixture(scope="module")
def three_days(tmp_path_factory) -> SimpleNamespace:
    """Three daily runs of a demo account with a day of churn before the second and the third
    (30% of the projects active, 20% changed): incremental runs, so the projects whose signals did
    not move are not re-read, and their branches have no new reading. dbt builds once, at the end."""
    account = Account.generate(dataclasses.replace(PRESETS["demo"], seed=31))
    warehouse = tmp_path_factory.mktemp("three-days") / "neon_api.duckdb"
    days = []
    with Simulator(account) as simulator:
        for n in range(3):
            if n:
                account.churn_day(active_share=0.3, changed_share=0.2)
            served = served_counters(account)
            client = client_for(simulator)
            elt(warehouse, client, do_transform=n == 2, show_progress=False, run_at=account.now)
            reread = {
                pid
                for pid, at in query(
                    warehouse,
                    "select object_id, confirmed_at from neon_api_data.confirmations where object_kind = 'project'",
                )
                if naive_utc(at) == naive_utc(account.now)
            }
            days.append(SimpleNamespace(day=account.now.date(), served=served, reread=reread))
    return SimpleNamespace(account=account, warehouse=warehouse, days=days)


def test_the_runs_left_projects_unread(three_days):
    """The premise of the carry-forward: later runs re-read some projects, not all."""
    projects = set(three_days.days[0].served)
    assert three_days.days[0].reread == projects
    for later in three_days.days[1:]:
        assert later.reread and set(later.served) - later.reread


def grown(now: int, then: int) -> int:
    """What a billing-period counter added since `then`: after a drop (a new period), all of it."""
    return now if now < then else now - then


def test_daily_usage_sums_the_branches_a_project_had_each_day(three_days):
    """Each project and run day: storage and counters summed over the branches it had that day, a
    branch not re-read counting with its last reading (equal to what Neon served, since its
    signals did not move), and what the counters added since the previous day."""
    rows = query_dicts(three_days.warehouse, "select * from marts.project_daily_usage")
    actual = {(r["project_id"], r["usage_date"]): r for r in rows}
    expected = {}
    previous = None
    for run in three_days.days:
        for pid, facts in run.served.items():
            branches = facts["branches"]
            sizes = [size for size, _, _ in branches.values() if size is not None]
            added = None
            if previous is not None and pid in previous.served:
                before = previous.served[pid]["branches"]
                added = [0, 0]
                for bid, (_, compute, written) in branches.items():
                    _, compute_before, written_before = before.get(bid, (None, 0, 0))
                    added[0] += grown(compute, compute_before)
                    added[1] += grown(written, written_before)
            expected[(pid, run.day)] = {
                "usage_date": run.day,
                "previous_usage_date": previous.day
                if previous is not None and pid in previous.served
                else None,
                "synthetic_storage_size_bytes": facts["synthetic"],
                "logical_size_bytes": sum(sizes) if sizes else None,
                "compute_time_seconds": sum(c for _, c, _ in branches.values()),
                "written_data_bytes": sum(w for _, _, w in branches.values()),
                "compute_time_seconds_added": added[0] if added else None,
                "written_data_bytes_added": added[1] if added else None,
                "branch_count": len(branches),
                "carried_forward_branch_count": 0 if pid in run.reread else len(branches),
                "is_deleted_project": False,
            }
        previous = run
    assert set(actual) == set(expected)
    for key, wanted in expected.items():
        assert {k: actual[key][k] for k in wanted} == wanted, key
    assert any(r["carried_forward_branch_count"] for r in rows), "some branches were carried forward"
    assert any(r["compute_time_seconds_added"] for r in rows), "some projects used compute"


# ------------------------------------------------------------------ costs of the session's demo run

SETTINGS = dbt_vars()
BRANCH_METRICS = settings.BRANCH_CONSUMPTION_METRICS


@pytest.fixture(scope="module")
def observed_at(demo_warehouse) -> datetime:
    (moments,) = query(demo_warehouse, "select distinct observed_at from marts.branch_costs")
    assert len(moments) == 1
    return moments[0]


@pytest.fixture(scope="module")
def window(observed_at) -> tuple[date, date]:
    """The 30 complete UTC days before the run's day."""
    day = observed_at.date()
    return day - timedelta(days=30), day - timedelta(days=1)


@pytest.fixture(scope="module")
def served_branch_usage(demo_account, window) -> dict[str, dict]:
    """Per current branch: its branch consumption summed over the window, and the days in it, as
    the simulator served them (organizations whose plan has branch consumption only)."""
    plans = {o["id"]: o["plan"] for o in demo_account.organizations}
    usage = {}
    for project in demo_account.all_projects():
        served = demo_account.branch_consumption(project["id"])
        has_it = project.get("org_id") in demo_account.plan_org_ids() and plans[project["org_id"]] in (
            BRANCH_CONSUMPTION_PLANS
        )
        for branch in demo_account.branches(project["id"]):
            frames = [
                f
                for f in (served.get(branch["id"], []) if has_it else [])
                if window[0] <= marts_timestamp(f["timeframe_start"]).date() <= window[1]
            ]
            usage[branch["id"]] = {
                "project_id": project["id"],
                "consumption_day_count": len(frames),
                **{m: sum(f["metrics"][m] for f in frames) if frames else None for m in BRANCH_METRICS},
            }
    return usage


def expected_branch_cost(facts: dict) -> dict:
    def total(*metrics):
        values = [facts[m] for m in metrics]
        return None if None in values else sum(values)

    compute = facts["compute_unit_seconds"]
    return {
        "consumption_day_count": facts["consumption_day_count"],
        **{f"{m}_last_30_days": facts[m] for m in BRANCH_METRICS},
        "cu_hours_last_30_days": None if compute is None else compute / 3600,
        "storage_byte_hours_last_30_days": total(
            "root_branch_bytes_month", "child_branch_bytes_month", "instant_restore_bytes_month"
        ),
        "network_transfer_bytes_last_30_days": total(
            "public_network_transfer_bytes", "private_network_transfer_bytes"
        ),
    }


def test_branch_costs_sum_what_neon_served_per_branch_over_the_window(
    demo_warehouse, served_branch_usage, window
):
    rows = query_dicts(demo_warehouse, "select * from marts.branch_costs")
    actual = {row["branch_id"]: row for row in rows}
    assert set(actual) == set(served_branch_usage)
    for branch_id, facts in served_branch_usage.items():
        row = actual[branch_id]
        assert (row["window_start_date"], row["window_end_date"]) == window
        assert row["project_id"] == facts["project_id"]
        expected = expected_branch_cost(facts)
        assert {k: row[k] for k in expected} == pytest.approx(expected), branch_id
    # no price is set in dbt_project.yml: the rate card prices (test_dbt_bill checks the prices)
    assert all(price is None for price in SETTINGS["neon_prices"].values())
    counts = [f["consumption_day_count"] for f in served_branch_usage.values()]
    # the demo's branch history began 21 days back: within the window, and only for the paid org
    assert 0 in counts and 0 < max(counts) < 30


def test_stale_branches_carry_their_cost_and_owner_over_the_window(
    demo_account, demo_warehouse, served_branch_usage
):
    rows = query_dicts(
        demo_warehouse,
        "select s.branch_id, s.compute_unit_seconds_last_30_days, s.cu_hours_last_30_days, "
        "s.storage_gb_months_last_30_days, s.network_transfer_bytes_last_30_days, s.estimated_cost_last_30_days, "
        "s.created_by, b.estimated_cost_last_30_days as branch_cost, b.storage_byte_hours_last_30_days "
        "from marts.stale_branches as s inner join marts.branch_costs as b using (branch_id)",
    )
    assert rows
    served_owner = {
        b["id"]: (b.get("created_by") or {}).get("name")
        for p in demo_account.all_projects()
        for b in demo_account.branches(p["id"])
    }
    for row in rows:
        expected = expected_branch_cost(served_branch_usage[row["branch_id"]])
        for column in (
            "compute_unit_seconds_last_30_days",
            "cu_hours_last_30_days",
            "network_transfer_bytes_last_30_days",
        ):
            assert row[column] == pytest.approx(expected[column]), (row["branch_id"], column)
        storage = expected["storage_byte_hours_last_30_days"]
        assert row["storage_gb_months_last_30_days"] == (
            None if storage is None else pytest.approx(storage / 744e9)
        )
        assert row["estimated_cost_last_30_days"] == row["branch_cost"]
        assert row["created_by"] == served_owner[row["branch_id"]]
    assert any(r["created_by"] for r in rows) or not any(served_owner.values())


def test_projects_total_the_window_from_the_project_consumption(demo_account, demo_warehouse, window):
    rows = query_dicts(demo_warehouse, "select * from marts.projects")
    assert rows
    for row in rows:
        frames = [
            f
            for f in demo_account.consumption(row["project_id"])
            if window[0] <= marts_timestamp(f["timeframe_start"]).date() <= window[1]
        ]
        for metric in settings.CONSUMPTION_METRICS:
            expected = sum(f["metrics"][metric] for f in frames) if frames else None
            assert row[f"{metric}_last_30_days"] == expected, (row["project_id"], metric)
        compute = row["compute_unit_seconds_last_30_days"]
        assert row["cu_hours_last_30_days"] == (None if compute is None else pytest.approx(compute / 3600))
        # priced at the rate card's rates whenever the project has consumption on a listed plan
        assert (row["estimated_cost_last_30_days"] is None) == (compute is None), row["project_id"]
    assert any(r["cu_hours_last_30_days"] for r in rows) and any(
        r["cu_hours_last_30_days"] is None for r in rows
    )


def test_compute_hygiene_flags_each_compute_with_its_reasons_and_cu_hours(
    demo_account, demo_warehouse, observed_at, window, served_branch_usage
):
    idle_after = SETTINGS["idle_replica_after_days"]
    stale_after = SETTINGS["stale_after_days"]
    min_size = SETTINGS["min_compute_size_cu"]
    rows = {r["endpoint_id"]: r for r in query_dicts(demo_warehouse, "select * from marts.compute_hygiene")}
    expected = {}
    for project in demo_account.all_projects():
        endpoints = demo_account.endpoints(project["id"])
        branches = {b["id"]: b for b in demo_account.branches(project["id"])}
        window_start = datetime.combine(window[0], datetime.min.time())
        active = {
            e["id"]: e["current_state"] == "active"
            or ("last_active" in e and marts_timestamp(e["last_active"]) >= window_start)
            for e in endpoints
        }
        for endpoint in endpoints:
            branch_id = endpoint["branch_id"]
            siblings = [e["id"] for e in endpoints if e["branch_id"] == branch_id]
            last = [
                marts_timestamp(e["last_active"])
                for e in endpoints
                if e["branch_id"] == branch_id and "last_active" in e
            ]
            branch_idle = (
                observed_at.date()
                - (max(last) if last else marts_timestamp(branches[branch_id]["created_at"])).date()
            ).days
            stale = not branches[branch_id]["default"] and branch_idle >= stale_after
            since = marts_timestamp(endpoint.get("last_active") or endpoint["created_at"])
            idle_days = (observed_at.date() - since.date()).days
            compute = served_branch_usage[branch_id]["compute_unit_seconds"]
            branch_hours = None if compute is None else compute / 3600
            if branch_hours is None:
                hours = None
            elif len(siblings) == 1:
                hours = branch_hours
            elif not active[endpoint["id"]]:
                hours = 0
            elif sum(active[s] for s in siblings) == 1:
                hours = branch_hours
            else:
                hours = None
            flags = {
                "never_suspends": endpoint["suspend_timeout_seconds"] == -1,
                "has_oversized_minimum": endpoint["autoscaling_limit_min_cu"] > min_size,
                "is_active_on_stale_branch": endpoint["current_state"] == "active" and stale,
                "is_idle_read_replica": endpoint["type"] == "read_only" and idle_days >= idle_after,
            }
            expected[endpoint["id"]] = {
                "branch_id": branch_id,
                "endpoint_state": endpoint["current_state"],
                "days_since_active": idle_days,
                "branch_endpoint_count": len(siblings),
                "branch_cu_hours_last_30_days": branch_hours,
                "cu_hours_last_30_days": hours,
                **flags,
                "flag_count": sum(flags.values()),
                # the thresholds applied, for the report and the notebook to word
                "min_compute_size_cu": min_size,
                "idle_replica_after_days": idle_after,
            }
    assert set(rows) == set(expected)
    names = {
        "never_suspends": "never_suspends",
        "has_oversized_minimum": "oversized_minimum",
        "is_active_on_stale_branch": "active_on_stale_branch",
        "is_idle_read_replica": "idle_read_replica",
    }
    for endpoint_id, wanted in expected.items():
        row = rows[endpoint_id]
        assert {k: row[k] for k in wanted} == pytest.approx(wanted), endpoint_id
        for flag, name in names.items():
            assert (row[f"{name}_reason"] is not None) == wanted[flag], (endpoint_id, flag)
            assert row[f"{name}_cu_hours"] == (
                pytest.approx(wanted["cu_hours_last_30_days"]) if wanted[flag] else None
            )
        if wanted["is_idle_read_replica"]:
            assert f"for {wanted['days_since_active']} days" in row["idle_read_replica_reason"]
    found = {flag: sum(w[flag] for w in expected.values()) for flag in names}
    assert found["never_suspends"] and found["has_oversized_minimum"] and found["is_idle_read_replica"], found
    assert any(w["cu_hours_last_30_days"] == 0 for w in expected.values()), "an idle sibling used nothing"


# ------------------------------------------------------------------------------ with prices set

# Negotiated prices for seven of the eight metrics, in USD per billing unit; extra_branches_month
# keeps the rate card's rate.
PRICES = {
    "compute_unit_seconds": 0.16,
    "root_branch_bytes_month": 0.3,
    "child_branch_bytes_month": 0.3,
    "instant_restore_bytes_month": 0.15,
    "snapshot_storage_bytes_month": 0.05,
    "public_network_transfer_bytes": 0.08,
    "private_network_transfer_bytes": 0.005,
}


@pytest.fixture(scope="module")
def priced(demo_warehouse, tmp_path_factory) -> Path:
    """A copy of the demo warehouse whose cost marts dbt rebuilt with PRICES set."""
    warehouse = tmp_path_factory.mktemp("priced") / "neon_api.duckdb"
    shutil.copyfile(demo_warehouse, warehouse)
    with DuckDBTarget(warehouse).build() as build:
        dbt(
            [
                "run",
                "--select",
                "branch_costs",
                "stale_branches",
                "int_consumption_priced_to_project_days",
                "projects",
                "monthly_bill",
                "--vars",
                json.dumps({"neon_prices": PRICES}),
            ],
            build,
        )
    return warehouse


def test_negotiated_prices_replace_the_rate_card(priced, served_branch_usage):
    per = Billing().per
    rows = query_dicts(priced, "select * from marts.branch_costs")
    costed = 0
    for row in rows:
        facts = served_branch_usage[row["branch_id"]]
        if facts["compute_unit_seconds"] is None:
            assert row["estimated_cost_last_30_days"] is None
            continue
        cost = {m: facts[m] / per[m] * PRICES[m] for m in BRANCH_METRICS}
        parts = {
            "estimated_compute_cost_last_30_days": cost["compute_unit_seconds"],
            "estimated_storage_cost_last_30_days": cost["root_branch_bytes_month"]
            + cost["child_branch_bytes_month"]
            + cost["instant_restore_bytes_month"],
            "estimated_transfer_cost_last_30_days": cost["public_network_transfer_bytes"]
            + cost["private_network_transfer_bytes"],
        }
        parts["estimated_cost_last_30_days"] = sum(parts.values())
        assert {k: row[k] for k in parts} == pytest.approx(parts), row["branch_id"]
        costed += 1
    assert costed
    stale = query_dicts(
        priced,
        "select s.estimated_cost_last_30_days as s, b.estimated_cost_last_30_days as b "
        "from marts.stale_branches as s inner join marts.branch_costs as b using (branch_id)",
    )
    assert stale and all(r["s"] == r["b"] for r in stale)
    bill = query_dicts(priced, "select metric_name, rate_usd, rate_source from marts.monthly_bill")
    assert bill
    for line in bill:
        if line["metric_name"] in PRICES:
            assert (float(line["rate_usd"]), line["rate_source"]) == (
                pytest.approx(PRICES[line["metric_name"]]),
                "neon_prices",
            )
        else:
            assert line["rate_source"] == "rate card"


def test_every_query_of_the_readme_and_docs_runs_on_the_demo_warehouse(demo_warehouse):
    """The SQL examples of the README, docs/ and dbt docs' front page, the cost marts' among them,
    run as written (and return rows)."""
    pages = [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
        REPO / "dbt_project/models/_overview.md",
    ]
    readme = "\n".join(p.read_text() for p in pages)
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.S)
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    assert any("marts.branch_costs" in s for s in statements)
    assert any("marts.monthly_bill" in s for s in statements)
    assert any("marts.project_costs" in s for s in statements)
    assert any("marts.compute_hygiene" in s for s in statements)
    assert any("marts.project_daily_usage" in s for s in statements)
    assert "```sql" in pages[-1].read_text()  # dbt docs' front page has its own
    for statement in statements:
        assert query(demo_warehouse, statement), statement
