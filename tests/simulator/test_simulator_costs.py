"""What costs money, in the simulator: `GET /consumption_history/v2/branches` as Neon's spec
describes it (daily metrics per branch for 1 to 100 projects, 1 to 1,000 branches a page, six
metrics only, paid usage-based plans only, history from when the account first ingested
branch-level data), and its numbers consistent with the project consumption (a project's branches
add up to the project).

Expected values are computed from the account accessors, never typed in.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from neon_simulator import PRESETS, Account, Simulator
from neon_simulator.errors import BRANCH_CONSUMPTION_PLAN_REQUIRED
from neon_simulator.reference import BRANCH_CONSUMPTION_METRICS, CONSUMPTION_METRICS, PRIVATE_NETWORKING_PLANS
from simulator_helpers import session, validate, walk_cursor

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
ROUTE = "/consumption_history/v2/branches"


@pytest.fixture(scope="module")
def account() -> Account:
    """Two paid organizations; branch-level history starts 20 days ago, project history 60."""
    return Account.generate(
        dataclasses.replace(PRESETS["realistic"], now=NOW, branch_consumption_days=20, seed=11)
    )


@pytest.fixture(scope="module")
def sim(account):
    with Simulator(account) as simulator:
        yield simulator


def day(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def params(account: Account, org: str, project_ids: list[str], days: int = 30, **extra) -> dict:
    today = account.now.replace(hour=0)
    return {
        "org_id": org,
        "project_ids": ",".join(project_ids),
        "from": (today - timedelta(days=days)).isoformat(),
        "to": today.isoformat(),
        "granularity": "daily",
        "metrics": ",".join(BRANCH_CONSUMPTION_METRICS),
        **extra,
    }


def paid_org(account: Account) -> str:
    return min(account.plan_org_ids())


def org_projects(account: Account, org: str) -> list[str]:
    return sorted(p["id"] for p in account.all_projects(org))


def frames_of(item: dict) -> dict[str, dict[str, int]]:
    """timeframe_start -> {metric: value} of one served branch."""
    return {
        frame["timeframe_start"]: {m["metric_name"]: m["value"] for m in frame["metrics"]}
        for period in item["periods"]
        for frame in period["consumption"]
    }


def test_the_six_metrics_are_the_first_six_of_the_projects_endpoint():
    assert BRANCH_CONSUMPTION_METRICS == CONSUMPTION_METRICS[:6]
    assert "extra_branches_month" not in BRANCH_CONSUMPTION_METRICS
    assert "snapshot_storage_bytes_month" not in BRANCH_CONSUMPTION_METRICS


def test_a_project_s_branches_add_up_to_the_project_every_day_and_metric(account):
    """Where both endpoints report a day, the branches' values sum to the project's, per metric;
    before branch-level history starts, there are no branch values at all."""
    since = account.now.replace(hour=0) - timedelta(days=20)
    checked = 0
    for project in account.all_projects():
        branches = account.branch_consumption(project["id"])
        per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for frames in branches.values():
            for frame in frames:
                assert day(frame["timeframe_start"]) >= since
                for metric, value in frame["metrics"].items():
                    per_day[frame["timeframe_start"]][metric] += value
        for frame in account.consumption(project["id"]):
            if day(frame["timeframe_start"]) < since:
                assert frame["timeframe_start"] not in per_day
                continue
            expected = {m: frame["metrics"][m] for m in BRANCH_CONSUMPTION_METRICS}
            assert dict(per_day[frame["timeframe_start"]]) == expected, (
                project["id"],
                frame["timeframe_start"],
            )
            checked += 1
    assert checked > 100


def test_storage_goes_to_root_or_child_branches_and_compute_to_branches_with_computes(account):
    """Root storage to root branches, child storage to children, compute and transfer to branches
    with computes; a day without any such branch alive leaves it to every branch alive."""
    for project in account.all_projects():
        pid = project["id"]
        branches = {b["id"]: b for b in account.branches(pid)}
        with_computes = {e["branch_id"] for e in account.endpoints(pid)}
        roots = {bid for bid, b in branches.items() if "parent_id" not in b}
        for bid, frames in account.branch_consumption(pid).items():
            for frame in frames:
                alive = {b for b in branches if day(branches[b]["created_at"]) < day(frame["timeframe_end"])}
                metrics = frame["metrics"]
                if bid not in roots:
                    assert metrics["root_branch_bytes_month"] == 0
                if bid in roots and alive - roots:
                    assert metrics["child_branch_bytes_month"] == 0
                if bid not in with_computes and alive & with_computes:
                    assert metrics["compute_unit_seconds"] == metrics["public_network_transfer_bytes"] == 0


def test_pages_follow_project_then_branch_id_and_match_the_account(sim, account):
    org = paid_org(account)
    projects = org_projects(account, org)[:30]
    items, bodies = walk_cursor(
        session(sim.api_key), sim.base_url + ROUTE, "branches", **params(account, org, projects, limit=7)
    )
    today = account.now.replace(hour=0, minute=0, second=0)
    keys = [(i["project_id"], i["branch_id"]) for i in items]
    expected = sorted(  # the branches with a day in the range: none for a branch born today
        (pid, bid)
        for pid in projects
        for bid, frames in account.branch_consumption(pid).items()
        if any(day(f["timeframe_start"]) < today for f in frames)
    )
    assert keys == expected
    assert all(len(b["branches"]) == 7 for b in bodies[:-2]) and bodies[-1]["branches"] == []
    for item in items:
        served = frames_of(item)
        wanted = {
            f["timeframe_start"]: f["metrics"]
            for f in account.branch_consumption(item["project_id"])[item["branch_id"]]
            if day(f["timeframe_start"]) < today
        }
        assert served == wanted


def test_a_deleted_branch_keeps_its_history(account):
    """Neon bills a branch for the days it lived: deleting it later does not change the past."""
    fresh = Account.generate(dataclasses.replace(account.spec, seed=12))
    pid = next(
        p["id"]
        for p in fresh.all_projects(paid_org(fresh))
        if any(not b["default"] and "parent_id" in b for b in fresh.branches(p["id"]))
    )
    victim = sorted(b["id"] for b in fresh.branches(pid) if not b["default"] and "parent_id" in b)[-1]
    before = fresh.branch_consumption(pid)
    fresh.delete_branch(pid, victim, cascade=True)
    fresh.tick(24)
    after = fresh.branch_consumption(pid)
    for bid, frames in before.items():
        assert after[bid][: len(frames) - 1] == frames[:-1]  # the last, partial day grows
    assert all(day(f["timeframe_start"]) <= fresh.now - timedelta(hours=24) for f in after[victim]), (
        "no days after its deletion"
    )


def test_filters_metrics_and_branches(sim, account):
    org = paid_org(account)
    pid = max(org_projects(account, org), key=lambda p: (len(account.branches(p)), p))
    wanted = sorted(b["id"] for b in account.branches(pid))[:2]
    response = session(sim.api_key).get(
        sim.base_url + ROUTE,
        params=params(
            account,
            org,
            [pid],
            metrics="public_network_transfer_bytes,compute_unit_seconds",
            branch_ids=",".join(wanted),
        ),
    )
    validate(response)
    body = response.json()
    assert [b["branch_id"] for b in body["branches"]] == wanted
    for item in body["branches"]:
        for period in item["periods"]:
            for frame in period["consumption"]:
                assert [m["metric_name"] for m in frame["metrics"]] == [
                    "public_network_transfer_bytes",
                    "compute_unit_seconds",
                ]


def test_errors_as_the_spec_lists_them(sim, account):
    http = session(sim.api_key)
    org = paid_org(account)
    projects = org_projects(account, org)

    def status(**overrides) -> tuple[int, str]:
        query = {**params(account, org, projects[:3]), **overrides}
        query = {k: v for k, v in query.items() if v is not None}
        response = http.get(sim.base_url + ROUTE, params=query)
        validate(response, request_valid=False)
        return response.status_code, response.json().get("message", "")

    for required in ("org_id", "project_ids", "from", "to", "granularity", "metrics"):
        assert status(**{required: None})[0] == 400, required
    for metric in ("extra_branches_month", "snapshot_storage_bytes_month", "cpu_seconds"):
        assert status(metrics=metric)[0] == 400, metric
    assert status(project_ids=",".join(f"p-{n}" for n in range(101)))[0] == 400
    assert status(limit=1001)[0] == 400 and status(limit=0)[0] == 400
    assert status(limit=1000)[0] == 200
    free = next(o["id"] for o in account.organizations if o["id"] not in account.plan_org_ids())
    assert status(org_id=free) == (403, BRANCH_CONSUMPTION_PLAN_REQUIRED)
    assert status(org_id="org-unknown-12345678")[0] == 404
    assert status(**{"from": (account.now - timedelta(days=61)).isoformat()})[0] == 406


def test_a_business_plan_has_project_consumption_but_not_branch_consumption(account):
    """The spec: project consumption for Launch, Scale, Agent, Business and Enterprise; branch
    consumption for the usage-based Launch, Scale, Agent and Enterprise only."""
    business = Account.generate(dataclasses.replace(account.spec, seed=13))
    org = paid_org(business)
    business._org_by_id[org]["plan"] = "business"
    projects = org_projects(business, org)[:2]
    with Simulator(business) as simulator:
        http = session(simulator.api_key)
        by_branch = http.get(simulator.base_url + ROUTE, params=params(business, org, projects))
        query = {k: v for k, v in params(business, org, projects).items() if k != "project_ids"}
        by_project = http.get(simulator.base_url + "/consumption_history/v2/projects", params=query)
    assert by_branch.status_code == 403 and by_branch.json()["message"] == BRANCH_CONSUMPTION_PLAN_REQUIRED
    assert by_project.status_code == 200


# --------------------------------------------------------------------------------------------------
# The money adds up: consumption derived from the estate served (Neon's raw units)
# --------------------------------------------------------------------------------------------------

HOUR = timedelta(hours=1)
#: Neon's free child branches per project and hour (``branches_per_project - 1``), by plan.
FREE_CHILD_BRANCHES = {"launch": 9, "scale": 24}


@pytest.fixture(scope="module")
def ticked() -> Account:
    """The account above, after 30 hours in which computes started and suspended."""
    later = Account.generate(account_spec())
    later.tick(30)
    return later


def account_spec():
    return dataclasses.replace(PRESETS["realistic"], now=NOW, branch_consumption_days=20, seed=11)


def paid_projects(account: Account) -> list[str]:
    return sorted(p["id"] for org in account.plan_org_ids() for p in account.all_projects(org))


def hours_alive(branch: dict, start: datetime, end: datetime, now: datetime) -> int:
    """Whole hours of ``[start, end)`` up to the clock's hour in which the branch existed."""
    born = day(branch["created_at"]).replace(minute=0, second=0)
    return max(0, int((min(end, now.replace(minute=0, second=0)) - max(start, born)) / HOUR))


@pytest.mark.parametrize("which", ["generated", "ticked"])
def test_no_compute_while_suspended_nor_beyond_its_size(account, ticked, which):
    """A branch's CU-seconds and transfer stop at its computes' last activity (none at all for a
    branch whose computes never ran), and an hour never holds more than the computes' maximum
    size for the time they existed in it."""
    estate = account if which == "generated" else ticked
    checked = quiet_hours = 0
    for pid in paid_projects(estate):
        computes: dict[str, list[dict]] = defaultdict(list)
        for endpoint in estate.endpoints(pid):
            computes[endpoint["branch_id"]].append(endpoint)
        for bid, frames in estate.branch_consumption(pid, "hourly").items():
            mine = computes.get(bid, [])
            last = max((day(e["last_active"]) for e in mine if "last_active" in e), default=None)
            for frame in frames:
                start, end, metrics = (
                    day(frame["timeframe_start"]),
                    day(frame["timeframe_end"]),
                    frame["metrics"],
                )
                ceiling = sum(
                    e["autoscaling_limit_max_cu"]
                    * max(
                        0,
                        (
                            min(end, day(e.get("last_active", e["created_at"])))
                            - max(start, day(e["created_at"]))
                        ).total_seconds(),
                    )
                    for e in mine
                )
                # whole CU-seconds: an hour may round up by one per compute
                assert metrics["compute_unit_seconds"] <= ceiling + len(mine), (pid, bid, frame)
                if last is None or start >= last:
                    quiet_hours += 1
                    assert metrics["compute_unit_seconds"] == 0, (pid, bid, frame)
                    assert (
                        metrics["public_network_transfer_bytes"]
                        == metrics["private_network_transfer_bytes"]
                        == 0
                    )
                checked += metrics["compute_unit_seconds"] > 0
    assert checked > 100 and quiet_hours > 100


def test_idle_computes_cost_nothing_in_the_months_after_their_last_activity(account):
    """The demo's old story, "computes idle since October have CU-hours in November", cannot happen."""
    found = 0
    for pid in paid_projects(account):
        endpoints = account.endpoints(pid)
        last = max((day(e["last_active"]) for e in endpoints if "last_active" in e), default=None)
        for month in account.consumption(pid, "monthly"):
            if last is None or day(month["timeframe_start"]) > last:
                found += 1
                assert month["metrics"]["compute_unit_seconds"] == 0, (pid, month)
        project = account.project(pid)
        if last is None or last < day(project["consumption_period_start"]):
            assert project["compute_time_seconds"] == project["active_time_seconds"] == 0
    assert found


def test_storage_is_each_branch_s_size_for_each_hour_it_lived(account):
    """Generated sizes are constant, so a day of root storage is the root's logical size times
    the hours it lived that day; a child's is its own data (the documented share of its size)."""
    from neon_simulator.consumption import CHILD_OWN_PERCENT

    checked = 0
    for pid in paid_projects(account):
        branches = {b["id"]: b for b in account.branches(pid)}
        for bid, frames in account.branch_consumption(pid).items():
            branch = branches[bid]
            size = branch.get("logical_size", 0)
            for frame in frames:
                hours = hours_alive(
                    branch, day(frame["timeframe_start"]), day(frame["timeframe_end"]), account.now
                )
                if "parent_id" in branch:
                    expected = {
                        "root_branch_bytes_month": 0,
                        "child_branch_bytes_month": size * CHILD_OWN_PERCENT // 100 * hours,
                    }
                else:
                    expected = {"root_branch_bytes_month": size * hours, "child_branch_bytes_month": 0}
                assert {m: frame["metrics"][m] for m in expected} == expected, (pid, bid, frame)
                checked += hours == 24 and size > 0
    assert checked > 100


def test_instant_restore_is_the_wal_written_within_the_history_retention(account):
    """Per hour a branch lives, instant restore holds what its computes wrote in the retention
    window (whole days) before the day began: their CU-seconds times the documented write rate."""
    from neon_simulator.consumption import WRITTEN_BYTES_PER_CU_SECOND

    checked = 0
    for pid in paid_projects(account):
        retention_days = -(-account.project(pid)["history_retention_seconds"] // 86400)
        writers = {e["branch_id"] for e in account.endpoints(pid)}
        replicas = {e["branch_id"] for e in account.endpoints(pid) if e["type"] == "read_only"}
        branches = {b["id"]: b for b in account.branches(pid)}
        for bid, frames in account.branch_consumption(pid).items():
            if bid not in writers or bid in replicas:
                continue
            compute = [f["metrics"]["compute_unit_seconds"] for f in frames]
            for n, frame in enumerate(frames):
                if n < retention_days or day(frames[0]["timeframe_start"]) < day(branches[bid]["created_at"]):
                    continue  # the window reaches before the branch's history we can see
                written = WRITTEN_BYTES_PER_CU_SECOND * sum(compute[n - retention_days : n])
                hours = hours_alive(
                    branches[bid], day(frame["timeframe_start"]), day(frame["timeframe_end"]), account.now
                )
                assert frame["metrics"]["instant_restore_bytes_month"] == written * hours, (pid, bid, n)
                checked += written > 0
    assert checked > 20


def test_extra_branches_are_the_child_branches_alive_each_hour(account, ticked):
    for estate in (account, ticked):
        for pid in paid_projects(estate):
            children = [b for b in estate.branches(pid) if "parent_id" in b]
            frames = estate.consumption(pid, "hourly", since=estate.now - timedelta(hours=72))
            assert len(frames) >= 72, pid  # the last three days, every hour
            for frame in frames:
                start = day(frame["timeframe_start"])
                alive = sum(day(b["created_at"]) < start + HOUR for b in children)
                assert frame["metrics"]["extra_branches_month"] == alive, (pid, frame["timeframe_start"])


def test_private_transfer_only_where_the_project_is_restricted_to_vpc_endpoints_on_scale(account):
    """Private networking is a Scale feature (Neon's plans page): a Launch organization's projects
    send nothing privately, even restricted to VPC endpoints (the demo has one: test_dbt_bill
    prices every line of its bill)."""
    plans = {org["id"]: org["plan"] for org in account.organizations}
    private = {
        pid: sum(f["metrics"]["private_network_transfer_bytes"] for f in account.consumption(pid))
        for pid in paid_projects(account)
    }
    restricted = {pid for pid in private if account.project_vpc_endpoints(pid)}
    on_scale = {
        pid for pid in restricted if plans[account.project(pid)["org_id"]] in PRIVATE_NETWORKING_PLANS
    }
    assert {pid for pid, sent in private.items() if sent} <= on_scale
    assert any(private[pid] for pid in on_scale)


@pytest.mark.parametrize("which", ["generated", "ticked"])
def test_a_branch_s_hours_add_up_to_its_days_and_months(account, ticked, which):
    estate = account if which == "generated" else ticked
    for pid in paid_projects(estate)[:15]:
        hourly, daily, monthly = (estate.branch_consumption(pid, g) for g in ("hourly", "daily", "monthly"))
        assert hourly.keys() == daily.keys() == monthly.keys()
        for bid in hourly:
            for metric in BRANCH_CONSUMPTION_METRICS:
                totals = [sum(f["metrics"][metric] for f in g[bid]) for g in (hourly, daily, monthly)]
                assert totals[0] == totals[1] == totals[2], (pid, bid, metric)


@pytest.mark.parametrize("which", ["generated", "ticked"])
def test_the_period_counters_are_the_consumption_since_the_period_began(account, ticked, which):
    """`compute_time_seconds`, `data_transfer_bytes` and `data_storage_bytes_hour` of a project
    restart with the billing period and agree with its consumption of the period so far."""
    estate = account if which == "generated" else ticked
    busy = 0
    for pid in paid_projects(estate):
        project = estate.project(pid)
        period = [
            f
            for f in estate.consumption(pid, "monthly")
            if f["timeframe_start"] == project["consumption_period_start"]
        ]
        assert len(period) == 1
        used = period[0]["metrics"]
        assert project["compute_time_seconds"] == used["compute_unit_seconds"]
        assert project["data_transfer_bytes"] == (
            used["public_network_transfer_bytes"] + used["private_network_transfer_bytes"]
        )
        assert (
            project["data_storage_bytes_hour"]
            == used["root_branch_bytes_month"] + used["child_branch_bytes_month"]
        )
        branches = estate.branches(pid)
        assert project["compute_time_seconds"] >= sum(b["compute_time_seconds"] for b in branches)
        busy += project["compute_time_seconds"] > 0
    assert busy


def test_periods_carry_the_organization_s_plan_a_rate_card_knows(account, sim):
    plans = {o["id"]: o["plan"] for o in account.organizations}
    assert {plans[org] for org in account.plan_org_ids()} <= {"launch", "scale"}
    for org in sorted(account.plan_org_ids()):
        query = params(account, org, org_projects(account, org)[:5], days=40)
        query["metrics"] = ",".join(CONSUMPTION_METRICS)
        items, _ = walk_cursor(
            session(sim.api_key), sim.base_url + "/consumption_history/v2/projects", "projects", **query
        )
        periods = [p for item in items for p in item["periods"]]
        assert len({p["period_start"] for p in periods}) == 2  # April and May
        assert {p["period_plan"] for p in periods} == {plans[org]}


def test_the_demo_has_a_project_past_its_plan_s_free_child_branches():
    """So that the demo's bill shows the branch allowance: some hours report more child branches
    than the plan gives a project for free."""
    demo = Account.generate(dataclasses.replace(PRESETS["demo"], now=NOW))
    plans = {o["id"]: o["plan"] for o in demo.organizations}
    past = [
        (pid, frame["timeframe_start"])
        for org in demo.plan_org_ids()
        for pid in org_projects(demo, org)
        for frame in demo.consumption(pid, "hourly")
        if frame["metrics"]["extra_branches_month"] > FREE_CHILD_BRANCHES[plans[org]]
    ]
    assert past
