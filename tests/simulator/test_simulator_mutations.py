"""The simulator's account changing under a run: projects and branches created, renamed and
deleted, a day of churn, and a clock whose tick changes only the volatile fields.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from neon_simulator import VOLATILE_FIELDS, Account, Simulator
from simulator_helpers import (
    assert_error,
    get,
    spec_of,
)


@pytest.fixture
def fresh_sim():
    """A simulator over its own demo account, for tests that mutate the account."""
    with Simulator(Account.generate(spec_of("demo"))) as sim:
        yield sim


def test_delete_project(fresh_sim):
    account = fresh_sim.account
    org = account.organizations[0]["id"]
    victim = account.all_projects(org)[0]["id"]
    account.delete_project(victim)
    assert_error(get(fresh_sim, f"/projects/{victim}"), 404)
    assert_error(get(fresh_sim, f"/projects/{victim}/branches"), 404)
    ids = [p["id"] for p in get(fresh_sim, "/projects", org_id=org, limit=400).json()["projects"]]
    assert victim not in ids and ids == [p["id"] for p in account.all_projects(org)]


def test_create_rename_and_delete_branches(fresh_sim):
    account = fresh_sim.account
    pid = account.all_projects()[0]["id"]
    before_ops = len(account.operations(pid))
    default = next(b for b in account.branches(pid) if b["default"])
    child = account.create_branch(pid, name="feature/simulated")
    grandchild = account.create_branch(pid, parent_id=child["id"])
    assert child["parent_id"] == default["id"] and grandchild["parent_id"] == child["id"]
    assert child["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [d["name"] for d in account.databases(pid, child["id"])] == [
        d["name"] for d in account.databases(pid, default["id"])
    ]
    served = get(fresh_sim, f"/projects/{pid}/branches").json()["branches"]
    assert {child["id"], grandchild["id"]} <= {b["id"] for b in served}
    # Neon's operations for a branch: create_branch, and start_compute for each compute it came with
    new_ops = account.operations(pid)[: len(account.operations(pid)) - before_ops]
    computes = [e for e in account.endpoints(pid) if e["branch_id"] in (child["id"], grandchild["id"])]
    assert Counter(op["action"] for op in new_ops) == Counter(
        {"create_branch": 2} | ({"start_compute": len(computes)} if computes else {})
    )
    assert {op["branch_id"] for op in new_ops} == {child["id"], grandchild["id"]}
    with pytest.raises(ValueError, match="already exists"):
        account.create_branch(pid, name="feature/simulated")

    account.tick(hours=2)
    renamed = account.rename_branch(pid, child["id"], "feature/renamed")
    assert renamed["updated_at"] > child["updated_at"]
    assert (
        get(fresh_sim, f"/projects/{pid}/branches/{child['id']}").json()["branch"]["name"]
        == "feature/renamed"
    )

    with pytest.raises(ValueError, match="children"):
        account.delete_branch(pid, child["id"])
    with pytest.raises(ValueError, match="default"):
        account.delete_branch(pid, default["id"])
    assert account.delete_branch(pid, child["id"], cascade=True) == [grandchild["id"], child["id"]]
    assert_error(get(fresh_sim, f"/projects/{pid}/branches/{child['id']}/roles"), 404)
    assert all(e["branch_id"] != child["id"] for e in account.endpoints(pid))


def test_databases_and_roles_created_leave_an_apply_config_operation(fresh_sim):
    account = fresh_sim.account
    pid = account.all_projects()[0]["id"]
    branch = next(b for b in account.branches(pid) if b["default"])
    before = len(account.operations(pid))
    database = account.create_database(pid, branch["id"], "created_db")
    role = account.create_role(pid, branch["id"], "created_role")
    served = get(fresh_sim, f"/projects/{pid}/branches/{branch['id']}/databases").json()["databases"]
    assert database in served and database["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    roles = get(fresh_sim, f"/projects/{pid}/branches/{branch['id']}/roles").json()["roles"]
    assert role["name"] in {r["name"] for r in roles}
    ops = get(fresh_sim, f"/projects/{pid}/operations", limit=2).json()["operations"]
    assert len(account.operations(pid)) == before + 2
    assert [(op["action"], op["branch_id"]) for op in ops] == [("apply_config", branch["id"])] * 2
    with pytest.raises(ValueError, match="already exists"):
        account.create_database(pid, branch["id"], "created_db")


def test_a_day_of_churn_changes_what_it_says_and_leaves_neon_s_signals():
    account = Account.generate(spec_of("realistic"))
    projects = {p["id"]: p for p in account.all_projects()}
    endpoints = {pid: {e["id"]: e for e in account.endpoints(pid)} for pid in projects}
    ops_before = {pid: len(account.operations(pid)) for pid in projects}
    day_start = account.now
    happened = account.churn_day(active_share=0.3, changed_share=0.1)
    assert account.now - day_start == timedelta(days=1)
    after = {p["id"]: p for p in account.all_projects()}
    # the active share had compute activity; besides them, only changed projects (a branch created
    # with its compute, or deleted with it) show compute news
    moved = {
        pid
        for pid in projects
        if after[pid].get("compute_last_active_at") != projects[pid].get("compute_last_active_at")
    }
    assert len(happened["active"]) == round(0.3 * len(projects))
    assert set(happened["active"]) <= moved <= set(happened["active"]) | set(happened["changed"])
    for pid in happened["active"]:
        new = account.operations(pid)[: len(account.operations(pid)) - ops_before[pid]]
        still_active = any(  # a compute active all day long starts and suspends nothing
            e["current_state"] == "active" and endpoints[pid][e["id"]]["current_state"] == "active"
            for e in account.endpoints(pid)
            if e["id"] in endpoints[pid]
        )
        assert still_active or {"start_compute", "suspend_compute"} & {op["action"] for op in new}
    changes = sum(
        len(happened[k]) for k in ("branch_created", "branch_deleted", "database_created", "project_renamed")
    )
    assert changes == len(happened["changed"]) == round(0.1 * len(projects)) and all(happened.values())
    for pid in happened["project_renamed"]:
        assert (
            after[pid]["name"] != projects[pid]["name"]
            and after[pid]["updated_at"] > projects[pid]["updated_at"]
        )
    today = {
        (op["branch_id"], op["action"])
        for pid in after
        for op in account.operations(pid)
        if op["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    assert all((b, "create_branch") in today for b in happened["branch_created"])
    assert all((b, "delete_timeline") in today for b in happened["branch_deleted"])
    # computes of the other projects did not move
    for pid in set(projects) - set(happened["active"]) - set(happened["changed"]):
        assert {e["id"]: e.get("last_active") for e in account.endpoints(pid)} == {
            eid: e.get("last_active")
            for eid, e in endpoints[pid].items()
            if eid in {x["id"] for x in account.endpoints(pid)}
        }


def test_rename_project_and_add_operations(fresh_sim):
    account = fresh_sim.account
    project = account.all_projects()[0]
    account.tick(hours=1)
    renamed = account.rename_project(project["id"], "renamed-project")
    assert renamed["name"] == "renamed-project" and renamed["updated_at"] > project["updated_at"]
    assert get(fresh_sim, f"/projects/{project['id']}").json()["project"]["name"] == "renamed-project"
    new = account.add_operations(project["id"], 3)
    ops = get(fresh_sim, f"/projects/{project['id']}/operations", limit=3).json()["operations"]
    assert ops == new == account.operations(project["id"])[:3]


def comparable(record: dict, volatile: list[str]) -> dict:
    return {k: v for k, v in record.items() if k not in volatile}


def test_tick_changes_only_volatile_fields():
    account = Account.generate(spec_of("demo"))
    projects = {p["id"]: p for p in account.all_projects()}
    branches = {b["id"]: b for pid in projects for b in account.branches(pid)}
    endpoints = {e["id"]: e for pid in projects for e in account.endpoints(pid)}
    consumption = {pid: account.consumption(pid, "hourly") for pid in projects}
    account.tick(hours=5)
    changed = Counter()
    for kind, before, after in (
        ("projects", projects, {p["id"]: p for p in account.all_projects()}),
        ("branches", branches, {b["id"]: b for pid in projects for b in account.branches(pid)}),
        ("endpoints", endpoints, {e["id"]: e for pid in projects for e in account.endpoints(pid)}),
    ):
        assert before.keys() == after.keys()
        for key, old in before.items():
            assert comparable(old, VOLATILE_FIELDS[kind]) == comparable(after[key], VOLATILE_FIELDS[kind]), (
                kind,
                key,
            )
            changed[kind] += old != after[key]
    assert all(changed[kind] for kind in ("projects", "branches", "endpoints")), changed
    for pid, old in consumption.items():
        new = account.consumption(pid, "hourly")
        assert new[: len(old)] == old, "past consumption never changes"
        assert len(new) == len(old) + (5 if old else 0)
