"""The simulator's synthetic account: real regions, branch trees and computes, and ids, timestamps,
versions and operations that look like Neon's.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from neon_simulator import PRESETS, Account, Simulator
from neon_simulator.account import REGIONS
from runs import cli_env
from simulator_helpers import (
    get,
    schema,
    session,
    spec_of,
    walk_projects,
)

ID = re.compile(r"^[a-z0-9-]{1,60}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_regions_are_real_and_one_has_no_projects(demo_sim, demo):
    response = get(demo_sim, "/regions")
    listed = [r["region_id"] for r in response.json()["regions"]]
    assert listed == [r[0] for r in REGIONS]
    assert {"aws-us-east-1", "aws-us-east-2", "aws-eu-central-1", "azure-eastus2", "azure-gwc"} <= set(listed)
    assert sum(r["default"] for r in response.json()["regions"]) == 1
    used = {p["region_id"] for p in demo.all_projects()}
    assert used <= set(listed)
    assert set(listed) - used, "at least one listed region must have no projects"
    for region in response.json()["regions"]:
        assert -90 <= float(region["geo_lat"]) <= 90 and -180 <= float(region["geo_long"]) <= 180


def test_branch_trees_and_computes(realistic):
    depths = Counter()
    for project in realistic.all_projects():
        pid = project["id"]
        branches = {b["id"]: b for b in realistic.branches(pid)}
        defaults = [b for b in branches.values() if b["default"]]
        assert len(defaults) == 1 and "parent_id" not in defaults[0]
        for branch in branches.values():
            if "parent_id" in branch:
                parent = branches[branch["parent_id"]]
                assert parent["created_at"] <= branch["created_at"]
                assert parent["project_id"] == pid
        depth = realistic.branch_depths(pid)
        depths.update(depth.values())
        assert max(depth.values()) <= realistic.spec.max_branch_depth
        read_write = Counter(e["branch_id"] for e in realistic.endpoints(pid) if e["type"] == "read_write")
        assert max(read_write.values(), default=0) <= 1
        for endpoint in realistic.endpoints(pid):
            assert endpoint["branch_id"] in branches
            assert 0.25 <= endpoint["autoscaling_limit_min_cu"] <= endpoint["autoscaling_limit_max_cu"] <= 8
            assert endpoint["current_state"] in ("active", "idle")
            if endpoint["current_state"] == "active":
                assert "last_active" in endpoint
    assert max(depths) >= 3, "trees deeper than two levels below the root must exist"
    endpoints = [e for p in realistic.all_projects() for e in realistic.endpoints(p["id"])]
    assert {"read_only", "read_write"} <= {e["type"] for e in endpoints}
    assert {"active", "idle"} <= {e["current_state"] for e in endpoints}
    branches = [b for p in realistic.all_projects() for b in realistic.branches(p["id"])]
    assert {"ready", "archived", "init"} <= {b["current_state"] for b in branches}
    assert any(b["protected"] for b in branches) and not all(b["protected"] for b in branches)


def test_ids_timestamps_and_versions_look_like_neon(realistic):
    ids = [o["id"] for o in realistic.organizations]
    databases = []
    for project in realistic.all_projects():
        pid = project["id"]
        ids.append(pid)
        assert TIMESTAMP.match(project["created_at"]) and TIMESTAMP.match(project["updated_at"])
        assert project["created_at"] <= project["updated_at"]
        for branch in realistic.branches(pid):
            ids.append(branch["id"])
            assert branch["id"].startswith("br-")
            assert TIMESTAMP.match(branch["created_at"])
            roles = {r["name"] for r in realistic.roles(pid, branch["id"])}
            for database in realistic.databases(pid, branch["id"]):
                assert database["owner_name"] in roles
                databases.append(database["id"])
        for endpoint in realistic.endpoints(pid):
            ids.append(endpoint["id"])
            assert endpoint["id"].startswith("ep-") and endpoint["host"].startswith(endpoint["id"] + ".")
    assert all(ID.match(i) for i in ids)
    assert len(ids) == len(set(ids)), "ids must be unique"
    assert len(databases) == len(set(databases)), "database ids are unique per account"
    assert {14, 15, 16, 17, 18} == {p["pg_version"] for p in realistic.all_projects()}
    assert {o["id"] for o in realistic.organizations} == {p["org_id"] for p in realistic.all_projects()}
    assert all(p["org_name"] for p in realistic.all_projects())


def test_operations_are_newest_first_with_spec_enums(realistic):
    actions, statuses = set(schema("OperationAction")["enum"]), set(schema("OperationStatus")["enum"])
    horizon = (realistic.now - timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for project in realistic.all_projects():
        ops = realistic.operations(project["id"])
        keys = [(o["created_at"], o["id"]) for o in ops]
        assert keys == sorted(keys, reverse=True)
        for op in ops:
            assert op["action"] in actions and op["status"] in statuses
            assert horizon <= op["created_at"] <= op["updated_at"]
            assert op["created_at"] >= project["created_at"]


def test_personal_account_has_no_orgs():
    account = Account.generate(spec_of("demo", orgs=0))
    assert account.organizations == []
    assert all("org_id" not in p and "org_name" not in p for p in account.all_projects())
    with Simulator(account) as sim:
        projects, _ = walk_projects(session(sim.api_key), sim.base_url, limit=5)
        assert [p["id"] for p in projects] == [p["id"] for p in account.all_projects()]
        assert get(sim, "/users/me/organizations").json() == {"organizations": []}


def test_default_clock_is_the_current_hour(monkeypatch):
    monkeypatch.delenv("NEON_SIM_NOW")  # the test run's own clock, set once by tests/conftest.py
    account = Account.generate(dataclasses.replace(PRESETS["tiny"], now=None))
    now = datetime.now(UTC)
    assert account.now.minute == account.now.second == 0
    assert timedelta(0) <= now - account.now < timedelta(hours=1, minutes=1)


def test_neon_sim_now_sets_the_clock_of_every_account_generated_without_one(monkeypatch):
    """Every process of a test run (xdist workers, `neon-elt demo` children) generates the same
    account only if they share its clock: an hour that turns mid-run would otherwise give them
    accounts an hour apart."""
    moment = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    monkeypatch.setenv("NEON_SIM_NOW", moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert Account.generate(PRESETS["tiny"]).now == moment
    a_day_later = moment + timedelta(days=1)
    assert Account.generate(dataclasses.replace(PRESETS["tiny"], now=a_day_later)).now == a_day_later
    monkeypatch.setenv("NEON_SIM_NOW", "yesterday")
    with pytest.raises(ValueError, match=r"^NEON_SIM_NOW: not an RFC 3339 timestamp: 'yesterday'$"):
        Account.generate(PRESETS["tiny"])


def test_every_process_of_the_test_run_shares_one_account_clock(demo_account, tmp_path):
    """This worker's demo account, and the one a run it starts (with cli_env's environment)
    generates in its own process, have the run's clock."""
    assert demo_account.now == datetime.fromisoformat(os.environ["NEON_SIM_NOW"])
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from neon_simulator import PRESETS, Account; print(Account.generate(PRESETS['demo']).now)",
        ],
        env=cli_env(tmp_path / "unused.duckdb"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert datetime.fromisoformat(child.stdout.strip()) == demo_account.now
