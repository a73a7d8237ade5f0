"""The simulator's access review endpoints: organization members, API keys, VPC endpoints and
project shares, served as Neon's spec has them, with the 403s a key meets. Expected values come
from the account's accessors (and the spec), never typed in."""

from __future__ import annotations

import pytest
from neon_simulator import Account, Simulator
from neon_simulator.errors import ADMIN_REQUIRED, VPC_PLAN_REQUIRED
from simulator_helpers import get, schema, spec_of


def orgs_by_role(account: Account) -> tuple[str, str]:
    """(an organization the personal key's user administers, one where they are a plain member)."""
    roles = {o["id"]: account.org_role(o["id"]) for o in account.organizations}
    return (
        next(o for o, r in roles.items() if r == "admin"),
        next(o for o, r in roles.items() if r != "admin"),
    )


def test_members_page_through_pagination_next_in_every_sort(demo_sim, demo):
    org = demo.organizations[0]["id"]
    expected = demo.members(org)
    keys = {
        "joined_at": lambda m: (m["member"]["joined_at"], m["member"]["id"]),
        "email": lambda m: (m["user"]["email"], m["member"]["id"]),
        "role": lambda m: (m["member"]["role"], m["member"]["id"]),
    }
    for sort_by, key in keys.items():
        for sort_order in ("asc", "desc"):
            served, cursor, pages = [], None, 0
            while True:
                params = {"limit": 2, **({"cursor": cursor} if cursor else {"sort_by": sort_by})}
                body = get(demo_sim, f"/organizations/{org}/members", sort_order=sort_order, **params).json()
                served += body["members"]
                pages += 1
                assert body["pagination"]["sort_by"] == sort_by
                cursor = body["pagination"].get("next")
                if cursor is None:
                    break
            assert served == sorted(expected, key=key, reverse=sort_order == "desc")
            assert pages == -(-len(expected) // 2)
    # without parameters: every member, newest first (the spec's defaults)
    body = get(demo_sim, f"/organizations/{org}/members").json()
    assert body["members"] == sorted(expected, key=keys["joined_at"], reverse=True)
    assert "next" not in body["pagination"]


def test_members_carry_the_user_s_email_mfa_and_deactivation(demo):
    member_fields = set(schema("Member")["properties"])
    user_fields = set(schema("MemberUserInfo")["properties"])
    records = [m for o in demo.organizations for m in demo.members(o["id"])]
    for record in records:
        assert set(record) == {"member", "user"}
        assert set(record["member"]) <= member_fields and set(record["user"]) <= user_fields
    users = [r["user"] for r in records]
    assert any(not u["has_mfa"] and "deactivated_at" not in u for u in users)
    assert any("deactivated_at" in u for u in users)
    # the first organization has more admins than the review's default threshold (three)
    first = demo.organizations[0]["id"]
    assert sum(m["member"]["role"] == "admin" for m in demo.members(first)) > 3
    roles = set(schema("MemberRole")["enum"])
    assert {r["member"]["role"] for r in records} <= roles


def test_api_keys_are_a_bare_array_for_admins_and_a_403_for_members(demo_sim, demo):
    admin_of, member_of = orgs_by_role(demo)
    served = get(demo_sim, f"/organizations/{admin_of}/api_keys").json()
    assert isinstance(served, list) and served == demo.org_api_keys(admin_of)
    assert all("key" not in k for k in served)  # Neon sends a key's token only when creating it
    assert any("last_used_at" not in k for k in served)  # a key never used
    assert any("project_id" in k for k in served)  # a key scoped to one project
    response = get(demo_sim, f"/organizations/{member_of}/api_keys")
    assert response.status_code == 403 and response.json()["message"] == ADMIN_REQUIRED
    assert get(demo_sim, "/organizations/org-unknown-12345678/api_keys").status_code == 404


def test_an_organization_key_acts_as_an_admin_of_its_own_organization_only(demo):
    _, member_of = orgs_by_role(demo)
    other = next(o["id"] for o in demo.organizations if o["id"] != member_of)
    key = demo.org_api_key(member_of)
    with Simulator(demo, api_keys={key: {"kind": "org", "org_id": member_of}}) as sim:
        assert get(sim, f"/organizations/{member_of}/api_keys").json() == demo.org_api_keys(member_of)
        assert get(sim, f"/organizations/{member_of}/members").json()["members"]
        assert get(sim, f"/organizations/{other}/members").status_code == 404


def test_vpc_endpoints_need_a_paid_plan_and_an_admin(demo_sim, demo):
    admin_of, member_of = orgs_by_role(demo)
    assert admin_of in demo.plan_org_ids()
    endpoints = get(demo_sim, f"/organizations/{admin_of}/vpc/vpc_endpoints").json()["endpoints"]
    assert endpoints == demo.org_vpc_endpoints(admin_of) and endpoints
    response = get(demo_sim, f"/organizations/{member_of}/vpc/vpc_endpoints")
    assert response.status_code == 403 and response.json()["message"] in (ADMIN_REQUIRED, VPC_PLAN_REQUIRED)
    restricted = [p["id"] for p in demo.all_projects(admin_of) if demo.project_vpc_endpoints(p["id"])]
    assert restricted
    for project in demo.all_projects(admin_of):
        body = get(demo_sim, f"/projects/{project['id']}/vpc_endpoints").json()
        assert body["endpoints"] == demo.project_vpc_endpoints(project["id"])
        assert {e["vpc_endpoint_id"] for e in body["endpoints"]} <= {e["vpc_endpoint_id"] for e in endpoints}
    free = next(o["id"] for o in demo.organizations if o["id"] not in demo.plan_org_ids())
    on_free = demo.all_projects(free)[0]["id"]
    response = get(demo_sim, f"/projects/{on_free}/vpc_endpoints")
    assert response.status_code == 403 and response.json()["message"] == VPC_PLAN_REQUIRED


def test_project_shares_go_inside_and_outside_the_organization_and_some_are_revoked(demo_sim, demo):
    shares = {}
    for project in demo.all_projects():
        body = get(demo_sim, f"/projects/{project['id']}/permissions").json()
        assert body["project_permissions"] == demo.project_permissions(project["id"])
        shares[project["id"]] = (project["org_id"], body["project_permissions"])
    members = {o["id"]: {m["user"]["email"] for m in demo.members(o["id"])} for o in demo.organizations}
    flat = [(org, s) for org, items in shares.values() for s in items]
    assert any(s["granted_to_email"] in members[org] for org, s in flat)
    assert any(s["granted_to_email"] not in members[org] and "revoked_at" not in s for org, s in flat)
    assert any("revoked_at" in s for _, s in flat)
    assert demo.served_emails() == set().union(*members.values()) | {s["granted_to_email"] for _, s in flat}


def test_project_settings_vary_as_an_access_review_needs(demo):
    settings = [p.get("settings", {}) for p in demo.all_projects()]
    assert any(s.get("block_public_connections") for s in settings)
    assert any(s.get("audit_log_level") in schema("ProjectAuditLogLevel")["enum"] for s in settings)
    assert any(s.get("allowed_ips") for s in settings)
    assert set().union(*settings) <= set(schema("ProjectSettingsData")["properties"])


def test_shares_change_without_a_signal(demo):
    account = Account.generate(spec_of("tiny"))
    project = account.all_projects()[0]
    operations = account.operations(project["id"])
    granted = account.grant_project_access(project["id"], "new.partner@elsewhere.example")
    assert granted in account.project_permissions(project["id"])
    revoked = account.revoke_project_access(project["id"], granted["id"])
    assert revoked["revoked_at"] == granted["granted_at"]
    assert account.operations(project["id"]) == operations
    assert account.all_projects()[0]["updated_at"] == project["updated_at"]
    with pytest.raises(KeyError):
        account.revoke_project_access(project["id"], granted["id"])


def test_key_tokens_are_served_only_with_serve_secrets():
    plain = Account.generate(spec_of("tiny"))
    secret = Account.generate(spec_of("tiny", serve_secrets=True))
    org = secret.organizations[0]["id"]
    with Simulator(secret) as sim:
        served = get(sim, f"/organizations/{org}/api_keys").json()
    tokens = {k["key"] for k in served}
    assert len(tokens) == len(served) > 1 and all(len(t) == 64 for t in tokens)
    assert tokens <= secret.served_secrets()
    assert plain.served_secrets() == set()
