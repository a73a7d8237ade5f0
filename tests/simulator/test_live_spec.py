"""Neon's live spec (2026-08-06) as the simulator follows it: the project's overlay
(extract/neon_simulator/neon-openapi-v2-live.yaml) against the live file itself, and what the
simulator serves of it (project members, deleted branches), validated against the merged spec."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from neon_api_source import settings
from neon_simulator import Account, Simulator
from neon_simulator.live import LEVELS, ORG_ROLE_DEFAULT, RECOVERY_DAYS
from neon_simulator.params import LIVE_OVERLAY_PATH
from simulator_helpers import get, session, spec_of, walk_branches
from spec import schema

# The live spec is Neon's (license: Proprietary): never copied into the project. Where a copy is
# at hand (the team's shared folder, or NEON_LIVE_SPEC), the overlay is checked against it.
LIVE_SPEC = Path(
    os.environ.get("NEON_LIVE_SPEC", "/work/shared/neon-api/neon-openapi-v2-live-2026-08-06.json")
)
MEMBERS = "/projects/{project_id}/members"


def _without_descriptions(node):
    if isinstance(node, dict):
        return {
            k: _without_descriptions(v)
            for k, v in node.items()
            if k not in ("description", "summary", "example")
        }
    if isinstance(node, list):
        return [_without_descriptions(v) for v in node]
    return node


@pytest.mark.skipif(not LIVE_SPEC.exists(), reason="no copy of Neon's live spec at hand")
def test_the_overlay_says_what_the_live_spec_says_descriptions_aside():
    overlay = yaml.safe_load(LIVE_OVERLAY_PATH.read_text())
    live = json.loads(LIVE_SPEC.read_text())
    for name, node in overlay["components"]["schemas"].items():
        assert _without_descriptions(node) == _without_descriptions(live["components"]["schemas"][name]), name
    for path, item in overlay["paths"].items():
        live_item = {k: v for k, v in live["paths"][path].items() if k in item}  # GET only
        # the path item's parameter is the live spec's, written out; tags and responses likewise
        assert _without_descriptions(item["get"]["parameters"]) == _without_descriptions(
            live_item["get"]["parameters"]
        )
        assert item["get"]["responses"]["200"]["content"] == live_item["get"]["responses"]["200"]["content"]
        assert _without_descriptions(item["parameters"]) == _without_descriptions(live_item["parameters"])


def test_the_classifier_knows_every_action_of_the_live_spec_and_postgres_19_is_allowed():
    actions = set(schema("OperationAction")["enum"])
    assert {"epc_sync", "tenant_attach_safekeepers", "tenant_detach_safekeepers"} <= actions
    assert set(settings.OPERATION_EFFECTS) == actions
    assert schema("PgVersion")["maximum"] == 19
    assert schema("ProjectPermissionLevel")["enum"] == list(LEVELS)


def test_project_members_page_on_next_and_validate_against_the_live_schema(demo_sim, demo):
    """Every organization project's members, walked two at a time: each page validates (get()
    checks it against the merged spec), `next` only while more remain, and together the pages are
    the members the account holds, visible to the key's user as the spec says."""
    for project in demo.all_projects():
        pid, org_id = project["id"], project.get("org_id")
        admin = demo.org_role(org_id) == "admin"
        expected = demo.project_members(pid, see_unassigned=admin)
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            body = get(demo_sim, MEMBERS.format(project_id=pid), **params).json()
            seen += body["project_members"]
            pages += 1
            cursor = (body.get("pagination") or {}).get("next")
            if cursor is None:
                break
        assert seen == expected and pages == max(1, -(-len(expected) // 2))
        assert admin or all(m["grant_source"] != "unassigned" for m in seen)


def test_grant_source_follows_the_organization_role_and_explicit_grants(demo):
    sources = Counter()
    for project in demo.all_projects():
        for m in demo.project_members(project["id"]):
            explicit = m.get("explicit_project_permission")
            if m["org_role"] == "admin":
                want = ("org_admin_override", "ADMIN")
            elif explicit:
                want = ("explicit", explicit)
            elif ORG_ROLE_DEFAULT.get(m["org_role"]):
                want = ("org_role_default", ORG_ROLE_DEFAULT[m["org_role"]])
            else:
                want = ("unassigned", None)
            assert (m["grant_source"], m.get("effective_project_permission")) == want
            assert m.get("project_role") == (want[1].lower() if want[1] else None)
            sources[m["grant_source"]] += 1
    assert set(sources) == {"explicit", "org_role_default", "org_admin_override", "unassigned"}


def test_members_of_a_personal_project_are_a_404():
    account = Account.generate(spec_of("demo", orgs=0, seed=7))
    with Simulator(account) as sim:
        pid = account.all_projects()[0]["id"]
        assert get(sim, MEMBERS.format(project_id=pid)).status_code == 404


def test_deleted_branches_are_listed_with_recovery_for_seven_days():
    """`include_deleted=true` adds the restorable deleted branches (the generated ones, a branch a
    person deletes) to the live ones, for seven days; without it, live ones only."""
    account = Account.generate(spec_of("demo"))
    pid = next(p["id"] for p in account.all_projects() if len(account.branches(p["id"])) > 2)
    child = next(b for b in account.branches(pid) if not b["default"])
    gone = account.delete_branch(pid, child["id"], cascade=True)
    deleted_at = account.now
    with Simulator(account) as sim:
        http = session(sim.api_key)
        live, _ = walk_branches(http, sim.base_url, pid)
        with_deleted, _ = walk_branches(http, sim.base_url, pid, include_deleted="true")
    recovered = {b["id"]: b["recovery"] for b in with_deleted if "recovery" in b}
    assert [b for b in with_deleted if "recovery" not in b] == live
    assert set(gone) <= set(recovered) and not set(recovered) & {b["id"] for b in live}
    assert recovered[child["id"]] == {
        "deleted_at": deleted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recoverable_until": (deleted_at + timedelta(days=RECOVERY_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deletion_method": "user",
    }
    account.tick(hours=24 * RECOVERY_DAYS)
    assert child["id"] not in {b["id"] for b in account.deleted_branches(pid)}


def test_a_branch_whose_ttl_passed_is_deleted_by_ttl():
    account = Account.generate(spec_of("tiny"))  # it has a branch with a TTL
    expiring = [
        (p["id"], b["id"])
        for p in account.all_projects()
        for b in account.branches(p["id"])
        if "expires_at" in b
    ]
    latest = max(
        b["expires_at"]
        for p in account.all_projects()
        for b in account.branches(p["id"])
        if "expires_at" in b
    )
    account.tick(hours=int((datetime.fromisoformat(latest) - account.now).total_seconds() // 3600) + 1)
    gone = set(account.expire_ttl_branches())
    assert {bid for _, bid in expiring} <= gone
    methods = {
        b["id"]: b["recovery"]["deletion_method"]
        for pid, _ in expiring
        for b in account.deleted_branches(pid)
    }
    assert all(methods[bid] == "ttl" for _, bid in expiring)


@pytest.mark.slow
def test_values_neon_adds_to_its_enumerations_publish_with_a_warning_naming_them(tmp_path, capsys):
    """A new endpoint type, region, operation action and PostgreSQL version: the run publishes the
    warehouse, and its output names each value."""
    from runs import extract

    account = Account.generate(spec_of("tiny"))
    project = account._projects[account.all_projects()[0]["id"]]
    new = {"type": "read_replica_pool", "region": "aws-mars-north-1", "action": "rebalance_storage"}
    project.endpoints[0]["type"] = new["type"]
    project.item["region_id"] = new["region"]
    project.item["pg_version"] = 20
    project.operations[0]["action"] = new["action"]
    with Simulator(account) as simulator:
        extract(tmp_path / "neon_api.duckdb", simulator, transform=True)
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: dbt test")]
    for value in [*new.values(), "20"]:
        assert any(value in line for line in warnings), (value, warnings)
    assert (tmp_path / "neon_api.duckdb").exists()


SNAPSHOTS = "/projects/{project_id}/snapshots"
SCHEDULE = "/projects/{project_id}/branches/{branch_id}/backup_schedule"
SPENDING_LIMIT = "/organizations/{org_id}/billing/spending_limit"


def test_snapshots_and_backup_schedules_validate_and_are_the_accounts(demo_sim, demo):
    """Every project's snapshots and every branch's backup schedule, each response validated
    against the spec: what the account holds; a scheduled branch has scheduled snapshots, each
    expiring its entry's retention after it was taken."""
    scheduled = 0
    for project in demo.all_projects():
        pid = project["id"]
        served = get(demo_sim, SNAPSHOTS.format(project_id=pid)).json()["snapshots"]
        assert served == demo.snapshots(pid)
        for branch in demo.branches(pid):
            items = get(demo_sim, SCHEDULE.format(project_id=pid, branch_id=branch["id"])).json()["schedule"]
            assert items == demo.backup_schedule(pid, branch["id"])
            if items:
                scheduled += 1
                retention = {item["retention_seconds"] for item in items}
                own = [s for s in served if s["source_branch_id"] == branch["id"] and not s["manual"]]
                assert own
                for s in own:
                    kept = datetime.fromisoformat(s["expires_at"]) - datetime.fromisoformat(s["created_at"])
                    assert kept.total_seconds() in retention
    assert scheduled


def test_scheduled_snapshots_expire_and_new_ones_are_taken_as_the_clock_moves():
    account = Account.generate(spec_of("demo"))
    pid, bid = next(
        (p["id"], b["id"])
        for p in account.all_projects()
        for b in account.branches(p["id"])
        if account.backup_schedule(p["id"], b["id"])
    )
    before = {s["id"] for s in account.snapshots(pid) if not s["manual"]}
    account.tick(hours=24 * 100)  # past the longest retention (90 days)
    after = {s["id"] for s in account.snapshots(pid) if not s["manual"]}
    assert after and not before & after
    account.set_backup_schedule(pid, bid, [])
    assert account.backup_schedule(pid, bid) == []
    assert not [s for s in account.snapshots(pid) if not s["manual"] and s["source_branch_id"] == bid]


def test_spending_limits_are_launch_and_scale_organizations_and_403_elsewhere(demo_sim, demo):
    for org in demo.organizations:
        response = get(demo_sim, SPENDING_LIMIT.format(org_id=org["id"]))
        if org["plan"] in ("launch", "scale"):
            assert response.json() == {"spending_limit_cents": demo.spending_limit(org["id"])}
        else:
            assert response.status_code == 403


@pytest.fixture
def built(demo_account, demo_warehouse):
    """The demo account and its warehouse, extracted and built once per session (conftest)."""
    return demo_account, demo_warehouse


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=None) if value else None


@pytest.mark.slow
def test_the_projects_mart_holds_each_projects_snapshots_and_unscheduled_root_branches(built):
    from expected import query_dicts

    account, warehouse = built
    rows = {
        r["project_id"]: r
        for r in query_dicts(
            warehouse,
            "select project_id, snapshot_count, manual_snapshot_count, snapshot_billed_size_bytes, "
            "next_snapshot_expires_at, root_branches_without_backup_schedule from marts.projects",
        )
    }
    assert set(rows) == {p["id"] for p in account.all_projects()}
    with_snapshots = 0
    for pid, row in rows.items():
        snapshots = account.snapshots(pid)
        billed = [s.get("diff_size", s.get("full_size")) for s in snapshots]
        expiries = [s["expires_at"] for s in snapshots if "expires_at" in s]
        roots = [b for b in account.branches(pid) if "parent_id" not in b]
        assert row == {
            "project_id": pid,
            "snapshot_count": len(snapshots),
            "manual_snapshot_count": sum(s["manual"] for s in snapshots),
            "snapshot_billed_size_bytes": sum(b for b in billed if b is not None) if snapshots else None,
            "next_snapshot_expires_at": _ts(min(expiries)) if expiries else None,
            "root_branches_without_backup_schedule": sum(
                not account.backup_schedule(pid, b["id"]) for b in roots
            ),
        }, pid
        with_snapshots += bool(snapshots)
    assert 0 < with_snapshots < len(rows)


@pytest.mark.slow
def test_the_branch_inventory_says_which_root_branches_have_a_backup_schedule(built):
    from expected import query_dicts

    account, warehouse = built
    rows = query_dicts(
        warehouse,
        "select project_id, branch_id, has_backup_schedule, backup_frequencies, restricted_action_names "
        "from marts.project_branch_inventory",
    )
    seen = Counter()
    for row in rows:
        branch = next(b for b in account.branches(row["project_id"]) if b["id"] == row["branch_id"])
        items = account.backup_schedule(row["project_id"], row["branch_id"])
        if "parent_id" in branch:
            assert row["has_backup_schedule"] is None  # child branches are not asked
        else:
            assert row["has_backup_schedule"] == bool(items)
        frequencies = sorted(item["frequency"] for item in items)
        assert row["backup_frequencies"] == (", ".join(frequencies) or None)
        restricted = sorted(r["name"] for r in branch.get("restricted_actions", []))
        assert row["restricted_action_names"] == (", ".join(restricted) or None)
        seen[(row["has_backup_schedule"], bool(restricted))] += 1
    assert seen[(True, True)] and seen[(False, False)] and seen[(None, False)]


@pytest.mark.slow
def test_limit_usage_holds_each_quota_and_spending_limit_against_its_usage(built):
    from expected import dbt_vars, query_dicts

    account, warehouse = built
    near = dbt_vars()["near_limit_share"]
    rows = {
        (r["scope_id"], r["limit_name"]): r
        for r in query_dicts(
            warehouse,
            "select scope_id, limit_name, limit_value, usage_value, is_near_limit from marts.limit_usage",
        )
    }
    expected = {}
    for project in account.all_projects():
        usage = account.quota_usage(project["id"])
        for key, value in (project.get("settings", {}).get("quota") or {}).items():
            if value:  # 0 is unlimited: no row
                expected[(project["id"], key)] = (value, usage[key], usage[key] >= near * value)
    for org in account.organizations:
        if org["plan"] in ("launch", "scale") and account.spending_limit(org["id"]) is not None:
            expected[(org["id"], "spending_limit_usd")] = account.spending_limit(org["id"]) / 100
    assert set(rows) == set(expected) and expected
    for key, want in expected.items():
        row = rows[key]
        if key[1] == "spending_limit_usd":
            assert row["limit_value"] == want and row["usage_value"] >= 0
        else:
            assert (row["limit_value"], row["usage_value"], row["is_near_limit"]) == want, key
    assert any(r["is_near_limit"] for r in rows.values()) and not all(
        r["is_near_limit"] for r in rows.values()
    )
