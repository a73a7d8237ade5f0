"""The extract against the simulator: completeness, both pagination schemes, organizations, history
across runs, the skip rules, and failures that must retire nothing. Counts are computed from the
account the simulator served."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from expected import query, visible_to_the_personal_key
from neon_api_source import listings, settings
from neon_api_source.limiter import RateLimiter
from neon_elt.run import StepFailed
from neon_simulator import PRESETS, Account, AccountSpec, Faults, RateLimits, Simulator
from runs import (
    cli_env,
    current_ids,
    expected_table_counts,
    extract,
    file_digest,
    landed_counts,
    table_count,
    versions,
)

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def fresh(preset: str = "demo", **changes) -> Account:
    return Account.generate(dataclasses.replace(PRESETS[preset], **changes))


def test_first_run_lands_every_table_completely(tmp_path):
    account = fresh()
    with Simulator(account) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator)
        served = simulator.stats
    assert landed_counts(tmp_path / "neon_api.duckdb") == expected_table_counts(account)
    # one request per listing page and per child: nothing fetched twice
    assert served.by_request and max(served.by_request.values()) == 1
    assert result.stats.total_requests == served.total
    # every project row carries its organization
    orgs = {o["id"] for o in account.organizations}
    assert {
        r[0] for r in query(tmp_path / "neon_api.duckdb", "select org_id from neon_api_data.projects")
    } == orgs
    # an organization whose spending limit Neon refused is counted, beside those it answered
    limits = table_count(tmp_path / "neon_api.duckdb", "organization_spending_limits")
    assert 0 < limits < len(orgs)
    assert (
        f"spending limits not read for {len(orgs) - limits} of {len(orgs)} organization(s): Neon answered 403"
        in (result.stats.notes)
    )


def test_both_pagination_schemes_across_many_pages(tmp_path, monkeypatch):
    """Tiny page sizes force every listing through many pages."""
    for listing, size in (
        (listings.PROJECTS, 2),
        (listings.BRANCHES, 1),
        (listings.OPERATIONS, 2),
        (listings.CONSUMPTION, 1),
        (listings.ORGANIZATION_MEMBERS, 2),
    ):
        monkeypatch.setattr(listing, "page_limit", size)
    account = fresh()
    with Simulator(account) as simulator:
        extract(tmp_path / "neon_api.duckdb", simulator)
        by_route = simulator.stats.by_route
        assert max(simulator.stats.by_request.values()) == 1

    assert landed_counts(tmp_path / "neon_api.duckdb") == expected_table_counts(account)
    projects_per_org = [len(account.all_projects(o["id"])) for o in account.organizations]
    # cursor paging: a page per 2 projects, then the empty page that ends it (the cursor never goes away)
    assert by_route["/projects"] == sum(n // 2 + 1 for n in projects_per_org)
    # `next` paging: one page per branch, the restorable deleted ones too (`include_deleted`), and
    # no request after the last one
    branches = sum(
        len(account.branches(p["id"])) + len(account.deleted_branches(p["id"]))
        for p in account.all_projects()
    )
    assert by_route["/projects/{project_id}/branches"] == branches
    # members page by `next` too: a page per 2 members
    members = [len(account.members(o["id"])) for o in account.organizations]
    assert by_route["/organizations/{org_id}/members"] == sum(-(-n // 2) for n in members)


def test_an_organization_key_takes_orgs_and_regions_from_the_projects(tmp_path):
    account = fresh()
    org_id = account.organizations[0]["id"]
    key = account.org_api_key(org_id)
    with Simulator(account, api_keys={key: {"kind": "org", "org_id": org_id}}) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator, api_key=key)
    warehouse = tmp_path / "neon_api.duckdb"
    projects = account.all_projects(org_id)
    assert current_ids(warehouse, "projects") == {p["id"] for p in projects}
    assert query(warehouse, "select id from neon_api_data.organizations") == [(org_id,)]
    regions = {r[0] for r in query(warehouse, "select region_id from neon_api_data.regions")}
    assert regions == {p["region_id"] for p in projects}
    assert any("organization API key" in note for note in result.stats.notes)


def test_a_personal_account_without_organizations(tmp_path):
    account = fresh("tiny", orgs=0)
    with Simulator(account) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator)
    warehouse = tmp_path / "neon_api.duckdb"
    assert current_ids(warehouse, "projects") == {p["id"] for p in account.all_projects()}
    assert table_count(warehouse, "organizations") == 0
    assert any(s.startswith("consumption") for s in result.stats.skipped_optional)


def test_history_records_creates_changes_and_deletes_but_not_counters(tmp_path):
    account = fresh()
    warehouse = tmp_path / "neon_api.duckdb"

    def leaves(project_id: str) -> list[dict]:
        branches = account.branches(project_id)
        return [
            b
            for b in branches
            if not b["default"] and not any(c.get("parent_id") == b["id"] for c in branches)
        ]

    # a project with a non-default leaf branch to delete and another branch to rename
    kept = next(
        p["id"] for p in account.all_projects() if leaves(p["id"]) and len(account.branches(p["id"])) > 1
    )
    gone_project = next(p["id"] for p in account.all_projects() if p["id"] != kept)
    branches = account.branches(kept)
    leaf = leaves(kept)[0]
    renamed = next(b for b in branches if b["id"] != leaf["id"])

    with Simulator(account) as simulator:
        extract(warehouse, simulator)
        first_versions = table_count(warehouse, "project_branches")
        counters_before = dict(
            query(warehouse, "select branch_id, logical_size from neon_api_data.branch_snapshots")
        )

        account.tick(hours=3)  # counters move; no stable field does
        account.rename_branch(kept, renamed["id"], "renamed-by-test")
        account.delete_branch(kept, leaf["id"])
        created = account.create_branch(kept, name="created-by-test")
        account.delete_project(gone_project)
        extract(warehouse, simulator)

    # two new branch rows: the rename's new version and the created branch; the deletes (the
    # branch's and the project's) only close versions
    assert table_count(warehouse, "project_branches") == first_versions + 2
    assert len(versions(warehouse, "project_branches", renamed["id"])) == 2
    assert versions(warehouse, "project_branches", renamed["id"])[0][1] is not None
    assert versions(warehouse, "project_branches", created["id"])[0][1] is None
    assert versions(warehouse, "project_branches", leaf["id"])[-1][1] is not None
    gone_branches = {
        b
        for (b,) in query(
            warehouse, "select id from neon_api_data.project_branches where project_id = ?", [gone_project]
        )
    }
    assert gone_branches and not gone_branches & current_ids(warehouse, "project_branches")
    assert gone_project not in current_ids(warehouse, "projects")
    assert current_ids(warehouse, "project_branches") == {
        b["id"] for p in account.all_projects() for b in account.branches(p["id"])
    }
    # counters live in the snapshot table, one row per branch and day, holding the latest reading
    latest = {
        b["id"]: b.get("logical_size") for p in account.all_projects() for b in account.branches(p["id"])
    }
    snapshots = dict(
        query(
            warehouse,
            "select branch_id, logical_size from neon_api_data.branch_snapshots "
            "qualify row_number() over (partition by branch_id order by snapshot_at desc) = 1",
        )
    )
    assert {b: snapshots[b] for b in latest} == latest
    assert any(counters_before.get(b) != latest[b] for b in latest), "tick should move some counters"
    assert query(
        warehouse,
        "select count(*) from (select branch_id, snapshot_date from neon_api_data.branch_snapshots "
        "group by all having count(*) > 1)",
    ) == [(0,)]


def test_a_child_request_that_fails_for_good_fails_the_run_and_retires_nothing(tmp_path):
    account = fresh()
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        extract(warehouse, simulator)
    before = file_digest(warehouse)
    project = next(p["id"] for p in account.all_projects() if len(account.branches(p["id"])) > 1)
    doomed = next(b for b in account.branches(project) if not b["default"])
    account.delete_branch(project, doomed["id"], cascade=True)  # a clean run would retire it

    failing = Faults(persistent={"/projects/{project_id}/endpoints": 503})
    with Simulator(account, faults=failing) as simulator, pytest.raises(StepFailed) as failure:
        extract(warehouse, simulator, max_attempts=3)
    message = str(failure.value)
    assert "/projects/{project_id}/endpoints" in message and "503" in message
    assert file_digest(warehouse) == before
    assert doomed["id"] in current_ids(warehouse, "project_branches")

    with Simulator(account) as simulator:  # the next clean run recovers without manual steps
        extract(warehouse, simulator)
    assert doomed["id"] not in current_ids(warehouse, "project_branches")


def test_a_project_deleted_mid_run_is_skipped_and_counted(tmp_path):
    account = fresh()
    victim = account.all_projects()[0]["id"]
    with Simulator(account, faults=Faults(delete_project_after_list=victim)) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator)
        served = simulator.stats
    # its branches, computes, operations and access listings each answered 404
    asked = {
        f"/api/v2/projects/{victim}/{listing}"
        for listing in ("branches", "endpoints", "operations", "permissions")
    }
    assert asked <= {request.split("?")[0] for request in served.by_request}
    assert result.stats.skipped_404 == served.by_status[404] >= len(asked)
    warehouse = tmp_path / "neon_api.duckdb"
    assert query(
        warehouse, "select count(*) from neon_api_data.project_branches where project_id = ?", [victim]
    ) == [(0,)]


def test_a_project_deleted_mid_run_is_left_out_of_the_access_review_and_counted(tmp_path):
    """Its shares and VPC restrictions answer 404 as its branches do: the project is gone, not
    hidden from the key. Every 404 is a skipped one, none is noted as not visible, and
    access_coverage says nothing of the project."""
    account = fresh()
    victim = next(
        p["id"]
        for p in account.all_projects()
        if visible_to_the_personal_key(account, p["org_id"])["vpc_endpoints"]
        and account.org_vpc_endpoints(p["org_id"])
    )
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account, faults=Faults(delete_project_after_list=victim)) as simulator:
        result = extract(warehouse, simulator)
        served = simulator.stats
    asked = [
        f"/api/v2/projects/{victim}/{listing}"
        for listing in (
            "permissions",
            "vpc_endpoints",
            f"members?limit={listings.PROJECT_MEMBERS.page_limit}",
        )
    ]
    assert all(served.by_request[path] == 1 for path in asked)
    assert result.stats.skipped_404 == served.by_status[404] > len(asked)
    assert not [note for note in result.stats.skipped_optional if "404" in note]
    assert (
        query(warehouse, "select listing from neon_api_data.access_coverage where scope_id = ?", [victim])
        == []
    )


def test_later_runs_fetch_only_new_operations(tmp_path):
    account = fresh()
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        extract(warehouse, simulator)
        seen = {
            p["id"]: [op["created_at"] for op in account.operations(p["id"])] for p in account.all_projects()
        }
        project = account.all_projects()[0]["id"]
        new = account.add_operations(project, 3)
        simulator.reset_stats()
        extract(warehouse, simulator)
        operation_requests = simulator.stats.by_route["/projects/{project_id}/operations"]
    # one page per project; a second (empty) one where the first did not reach back past the
    # newest operation seen last time minus the look-back (or nothing was seen last time)
    lookback = timedelta(hours=settings.OPERATIONS_LOOKBACK_HOURS)

    def pages(project_id: str) -> int:
        now = [op["created_at"] for op in account.operations(project_id)]
        if not now:
            return 1
        before = seen[project_id]
        return 2 if not before or parse(min(now)) >= parse(max(before)) - lookback else 1

    assert operation_requests == sum(pages(p["id"]) for p in account.all_projects())
    ids = {r[0] for r in query(warehouse, "select id from neon_api_data.operations")}
    assert {op["id"] for op in new} <= ids
    assert len(ids) == sum(len(account.operations(p["id"])) for p in account.all_projects())
    assert table_count(warehouse, "operations") == len(ids)


def test_consumption_is_incremental_with_a_look_back(tmp_path):
    account = fresh()
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        first = extract(warehouse, simulator)
        second = extract(warehouse, simulator)
    assert first.table_rows["consumption"] == expected_table_counts(account)["consumption"]
    # the second run re-reads only the look-back days, and merging leaves no duplicates
    assert 0 < second.table_rows["consumption"] < first.table_rows["consumption"]
    assert table_count(warehouse, "consumption") == first.table_rows["consumption"]


def test_neon_rate_limits_are_respected_without_a_single_429(tmp_path):
    """Client and simulator share the same limits (scaled up so the test is quick)."""
    limits = RateLimits(
        account_rate=60.0, account_burst=10, route_rate=40.0, route_burst=40, consumption_rate=30.0
    )
    limiter = RateLimiter(
        requests_per_minute=60.0 * 60,
        burst=10,
        route_requests_per_second=40,
        route_limits={listings.CONSUMPTION_ROUTES: (30.0 * 60, limits.consumption_burst)},
    )
    account = fresh()
    with Simulator(account, rate_limits=limits) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator, limiter=limiter)
        assert simulator.stats.rate_limited == 0
    assert result.stats.throttled == 0
    assert landed_counts(tmp_path / "neon_api.duckdb") == expected_table_counts(account)


def test_spec_account_knobs_are_reflected(tmp_path):
    """A bigger, deeper account still lands whole (guards the fan-out paths)."""
    account = Account.generate(
        AccountSpec(seed=7, orgs=3, projects=30, branches_per_project=4, max_branch_depth=4)
    )
    with Simulator(account) as simulator:
        extract(tmp_path / "neon_api.duckdb", simulator)
    assert landed_counts(tmp_path / "neon_api.duckdb") == expected_table_counts(account)


def test_the_neon_elt_command_extracts_without_pandas_and_python_sessions_keep_it(tmp_path):
    """DuckDB imports pandas (about 50 MB) on the first query with parameters when it is installed;
    the `neon-elt` command (`console`) answers that import as "not installed". A Python session
    that imports neon_elt and runs an extract (`main`) keeps pandas, as DuckDB asks for it. Each
    runs in a fresh process: this one may have loaded pandas already."""
    account = fresh("tiny")

    def run(entry: str, warehouse: Path) -> str:
        probe = (
            "import sys\n"
            f"from neon_elt.cli import {entry}\n"
            f"code = {entry}(['extract', '--no-consumption'])\n"
            "print('exit', code, 'pandas loaded', 'pandas' in sys.modules)\n"
        )
        ran = subprocess.run(
            [sys.executable, "-c", probe],
            env=cli_env(warehouse, simulator),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert current_ids(warehouse, "projects") == {p["id"] for p in account.all_projects()}, ran.stderr
        return ran.stdout.strip().splitlines()[-1]

    with Simulator(account) as simulator:
        assert run("console", tmp_path / "command.duckdb") == "exit 0 pandas loaded False"
        assert run("main", tmp_path / "session.duckdb") == "exit 0 pandas loaded True"


def test_a_load_on_several_workers_logs_no_error(tmp_path):
    """A load small enough for several workers (memory.load_workers) merges tables at once; each
    worker has DuckDB's load budget of its own, so none runs out of memory and dlt logs no retry
    with its traceback. (When the four shared one budget, 2 runs in 4 of this account did.)"""
    import logging

    from neon_elt import memory

    # the realistic account, cut to a load just under the size that still runs several workers
    account = Account.generate(dataclasses.replace(PRESETS["realistic"], projects=90))
    errors: list[str] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = lambda record: errors.append(record.getMessage())
    logging.getLogger("dlt").addHandler(handler)
    try:
        with Simulator(account) as simulator:
            for turn in range(2):
                result = extract(tmp_path / f"turn-{turn}.duckdb", simulator)
                assert memory.load_workers(sum(result.table_rows.values())) > 1
    finally:
        logging.getLogger("dlt").removeHandler(handler)
    assert errors == []
