"""Who can reach the estate, as the extract lands it: members, organization API keys, shares and
VPC endpoints, and what the key could not read. Expected rows come from what the simulator served."""

from __future__ import annotations

import dataclasses

import pytest
from access_helpers import coverage, landed_members, landed_shares, served_members, served_shares, ts
from expected import (
    query,
    visible_to_the_personal_key,
)
from neon_api_source import listings
from neon_api_source.access import hash_email
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import extract

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


def test_members_land_with_their_email_mfa_and_deactivation(demo_account, demo_warehouse):
    assert landed_members(demo_warehouse) == served_members(demo_account)


def test_api_keys_land_for_the_organizations_the_key_administers_without_tokens(demo_account, demo_warehouse):
    expected = {
        (
            k["id"],
            org["id"],
            k["name"],
            ts(k["created_at"]),
            k["created_by"]["id"],
            ts(k.get("last_used_at")),
            k["last_used_from_addr"],
            k.get("project_id"),
        )
        for org in demo_account.organizations
        if visible_to_the_personal_key(demo_account, org["id"])["api_keys"]
        for k in demo_account.org_api_keys(org["id"])
    }
    landed = query(
        demo_warehouse,
        "select id, org_id, name, created_at, created_by_user_id, last_used_at, last_used_from_addr, "
        "project_id from neon_api_data.organization_api_keys",
    )
    assert set(landed) == expected and len(landed) == len(expected) > 0
    columns = {
        c
        for (c,) in query(
            demo_warehouse,
            "select column_name from information_schema.columns where table_name = 'organization_api_keys'",
        )
    }
    assert not columns & {"key", "token", "created_by", "created_by__name", "created_by__image"}


def test_shares_and_vpc_endpoints_land(demo_account, demo_warehouse):
    assert landed_shares(demo_warehouse) == served_shares(demo_account)
    org_vpc = {
        (org["id"], e["vpc_endpoint_id"], e["label"], e["region_id"])
        for org in demo_account.organizations
        if visible_to_the_personal_key(demo_account, org["id"])["vpc_endpoints"]
        for e in demo_account.org_vpc_endpoints(org["id"])
    }
    assert (
        org_vpc
        and set(
            query(
                demo_warehouse,
                "select org_id, vpc_endpoint_id, label, region_id from "
                "neon_api_data.organization_vpc_endpoints",
            )
        )
        == org_vpc
    )
    restrictions = {
        (p["id"], e["vpc_endpoint_id"], e["label"])
        for p in demo_account.all_projects()
        if p.get("org_id") in {org for org, *_ in org_vpc}
        for e in demo_account.project_vpc_endpoints(p["id"])
    }
    assert (
        restrictions
        and set(
            query(
                demo_warehouse,
                "select project_id, vpc_endpoint_id, label from neon_api_data.project_vpc_endpoints",
            )
        )
        == restrictions
    )


def test_coverage_says_what_the_key_could_not_read(demo_account, demo_warehouse):
    """The personal key's user is a plain member of one organization: its API keys and VPC
    endpoints answer 403, and its projects' VPC restrictions are therefore unknown."""
    found = coverage(demo_warehouse)
    for org in demo_account.organizations:
        visible = visible_to_the_personal_key(demo_account, org["id"])
        assert found[("organization_members", org["id"])]["is_visible"]
        for listing, name in (
            ("organization_api_keys", "api_keys"),
            ("organization_vpc_endpoints", "vpc_endpoints"),
        ):
            assert found[(listing, org["id"])]["is_visible"] == visible[name]
            assert found[(listing, org["id"])]["status"] == (200 if visible[name] else 403)
        # a project's restrictions are read only where its organization's endpoints are seen and exist
        read = visible["vpc_endpoints"] and bool(demo_account.org_vpc_endpoints(org["id"]))
        for project in demo_account.all_projects(org["id"]):
            assert found[("project_permissions", project["id"])]["status"] == 200
            vpc = found[("project_vpc_endpoints", project["id"])]
            assert vpc["is_visible"] == visible["vpc_endpoints"] and (vpc["status"] == 200) == read


def test_a_share_listing_a_key_may_not_read_is_noted_and_skipped(tmp_path):
    account = Account.generate(PRESETS["tiny"])
    refused = account.all_projects()[0]["id"]
    faults = Faults(persistent={f"/projects/{refused}/permissions": 403})
    with Simulator(account, faults=faults) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator)
    found = coverage(tmp_path / "neon_api.duckdb")
    assert not found[("project_permissions", refused)]["is_visible"]
    assert found[("project_permissions", refused)]["status"] == 403
    assert all(
        f["is_visible"]
        for (listing, pid), f in found.items()
        if listing == "project_permissions" and pid != refused
    )
    assert any(s.startswith("project shares of 1 project: 403") for s in result.stats.skipped_optional)


def test_the_hash_is_keyed_and_normalised():
    assert hash_email(" Alice@Example.COM ", "s" * 16) == hash_email("alice@example.com", "s" * 16)
    assert hash_email("alice@example.com", "s" * 16) != hash_email("alice@example.com", "t" * 16)
    assert hash_email("alice@example.com", "s" * 16).startswith("hmac-sha256:")


def test_a_404_from_project_members_of_a_project_that_still_exists_is_not_a_deletion(tmp_path):
    """Neon answers the members listing 404 both for a project deleted since it was listed and
    where per-project permissions are off. Off, the project is still there: the run says the
    listing was not visible (access_coverage, the summary) instead of counting a deleted project;
    deleted mid-run, it is still counted with the skipped 404s."""
    account = Account.generate(dataclasses.replace(PRESETS["demo"], seed=5))
    org_id = next(o["id"] for o in account.organizations if account.all_projects(o["id"]))
    account.set_project_roles(org_id, False)
    off = {p["id"] for p in account.all_projects(org_id)}
    victim = next(p["id"] for p in account.all_projects() if p.get("org_id") and p["org_id"] != org_id)
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account, faults=Faults(delete_project_after_list=victim)) as simulator:
        result = extract(warehouse, simulator)
        served = simulator.stats
    members = {
        pid: f"/api/v2/projects/{pid}/members?limit={listings.PROJECT_MEMBERS.page_limit}" for pid in off
    }
    assert all(served.by_request[path] == 1 for path in members.values())
    coverage = dict(
        query(
            warehouse,
            "select scope_id, status from neon_api_data.access_coverage where listing = 'project_members'",
        )
    )
    assert {pid: coverage.get(pid) for pid in off} == dict.fromkeys(off, 404)
    assert victim not in coverage
    # every 404 but those of the projects that are still there is a skipped one (the victim's)
    assert result.stats.skipped_404 == served.by_status[404] - len(off) > 0
    (note,) = [n for n in result.stats.skipped_optional if n.startswith("project members of")]
    assert f"{len(off):,} project" in note and "404" in note
