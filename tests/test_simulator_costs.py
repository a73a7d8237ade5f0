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
from neon_simulator.reference import BRANCH_CONSUMPTION_METRICS, CONSUMPTION_METRICS
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
