"""Who can reach the estate, as the marts and the report say it: one row per grant, per project and
per member, the findings of the access review, and how each restorable branch went. Expected rows
come from what the simulator served."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
import yaml
from access_helpers import ts
from expected import (
    ACCESS_RELATIONS,
    access_review_rows,
    project_security_rows,
    query,
    query_dicts,
    relations_holding,
    visible_to_the_personal_key,
)
from neon_elt.report import write
from neon_elt.targets import DuckDBTarget
from neon_simulator import PRESETS, Account, Simulator
from runs import extract
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

# --------------------------------------------------------------------------------- the marts

VARS = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())["vars"]


def test_access_review_has_one_row_per_grant_with_its_flags(demo_account, demo_warehouse):
    ((keys_read_at,),) = query(
        demo_warehouse,
        "select max(confirmed_at) from staging.stg_neon__access_coverage where listing = 'organization_api_keys'",
    )
    expected = access_review_rows(
        demo_account, keys_read_at, VARS["api_key_unused_after_days"], VARS["max_admins_per_org"]
    )
    columns = next(iter(expected.values())).keys()
    rows = query_dicts(demo_warehouse, f"select grant_id, {', '.join(columns)} from marts.access_review")
    actual = {row.pop("grant_id"): row for row in rows}
    assert len(rows) == len(actual) and actual == expected
    # the demo account raises every flag, and leaves some grants unflagged
    for flag in ("without_mfa", "unused_key", "outside_share", "excess_admin"):
        assert any(row[f"is_flagged_{flag}"] for row in expected.values()), flag
    assert any(row["review_reasons"] is None for row in expected.values())


def test_project_security_has_one_row_per_project_and_says_what_was_not_visible(demo_account, demo_warehouse):
    expected = project_security_rows(demo_account)
    columns = next(iter(expected.values())).keys()
    rows = query_dicts(demo_warehouse, f"select project_id, {', '.join(columns)} from marts.project_security")
    actual = {row.pop("project_id"): row for row in rows}
    assert actual == expected
    assert any(row["not_visible"] for row in expected.values())
    assert any(row["is_reachable_from_anywhere"] for row in expected.values())
    assert any(not row["is_reachable_from_anywhere"] for row in expected.values())


def test_organizations_say_which_access_listings_the_key_could_read(demo_account, demo_warehouse):
    expected = {}
    for org in demo_account.organizations:
        visible = visible_to_the_personal_key(demo_account, org["id"])
        refused = [
            f"organization {words} (403)"
            for words, name in (("API keys", "api_keys"), ("VPC endpoints", "vpc_endpoints"))
            if not visible[name]
        ]
        expected[org["id"]] = (
            org["name"],
            visible["members"],
            visible["api_keys"],
            visible["vpc_endpoints"],
            ", ".join(refused) or None,
        )
    rows = query(
        demo_warehouse,
        "select org_id, org_name, are_members_visible, are_api_keys_visible, are_vpc_endpoints_visible, "
        "not_visible from marts.organizations",
    )
    assert {org_id: tuple(rest) for org_id, *rest in rows} == expected and len(rows) == len(expected)
    assert any(row[-1] for row in expected.values()) and not all(row[-1] for row in expected.values())


def test_emails_appear_only_in_the_access_tables(demo_account, demo_warehouse):
    """Every relation of the warehouse, searched as text: the addresses served appear in the
    access review's tables and views only."""
    assert relations_holding(demo_warehouse, demo_account.served_emails()) == ACCESS_RELATIONS


def test_the_report_counts_the_access_review_and_names_nobody(demo_account, demo_warehouse, tmp_path):
    page = write(DuckDBTarget(demo_warehouse), tmp_path / "report.html").read_text()
    section = page.split('<section data-section="access">', 1)[1].split("</section>", 1)[0]
    rows = query_dicts(demo_warehouse, "select * from marts.access_review")
    flags = [sum(r[f"is_flagged_{f}"] for r in rows) for f in ("without_mfa", "unused_key", "outside_share")]
    assert all(flags)  # the demo account raises each, so a section of zeros cannot pass
    assert (
        f"{flags[0]} active members without MFA, {flags[1]} API keys never used or long unused, "
        f"{flags[2]} active shares outside their organization"
    ) in section
    for (
        org
    ) in demo_account.organizations:  # one row per organization, keys shown as not visible to a non-admin
        (cells,) = [r for r in section.split("<tr>") if r.startswith(f"<td>{org['name']}</td>")]
        assert ("not visible" in cells) == (
            not visible_to_the_personal_key(demo_account, org["id"])["api_keys"]
        )
    assert "organization API keys (403)" in section
    lowered = page.lower()
    assert not [e for e in demo_account.served_emails() if e.lower() in lowered]
    assert "hmac-sha256:" not in page


# ------------------------------------------------------------------- per-project permissions


def test_project_access_has_one_row_per_project_and_member_who_can_reach_it(demo_account, demo_warehouse):
    """Exactly what `GET /projects/{id}/members` served the key, less the members without access."""
    from runs import served_project_members

    served = {
        (p["id"], m["member_id"], m["effective_project_permission"], m["grant_source"], m["org_role"])
        for p in demo_account.all_projects()
        for m in served_project_members(demo_account, p["id"])
        if m.get("effective_project_permission")
    }
    rows = query(
        demo_warehouse,
        "select project_id, member_id, effective_project_permission, grant_source, org_role from marts.project_access",
    )
    assert set(rows) == served and len(rows) == len(served)
    assert {row[3] for row in rows} == {"explicit", "org_role_default", "org_admin_override"}
    nobody_explicit = {
        p["id"]
        for p in demo_account.all_projects()
        if p.get("org_id")
        and not any(m["grant_source"] == "explicit" for m in served_project_members(demo_account, p["id"]))
    }
    flagged = query(
        demo_warehouse,
        "select distinct project_id from marts.project_access where is_project_without_explicit_grant",
    )
    assert {pid for (pid,) in flagged} == nobody_explicit and nobody_explicit


def test_branch_history_says_how_and_when_each_restorable_branch_went(tmp_path):
    """A day after a first run, a person deleted one branch: branch_history gives it, and the
    branches deleted before any run saw them alive, Neon's deleted_at, deletion_method and
    recoverable_until, and lists them as still restorable."""
    account = Account.generate(dataclasses.replace(PRESETS["demo"], seed=5))
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        extract(warehouse, simulator, run_at=account.now + timedelta(hours=1))
        pid = next(p["id"] for p in account.all_projects() if len(account.branches(p["id"])) > 2)
        leaf = next(
            b["id"]
            for b in account.branches(pid)
            if not b["default"] and not any(c.get("parent_id") == b["id"] for c in account.branches(pid))
        )
        account.tick(hours=24)
        account.delete_branch(pid, leaf)
        extract(warehouse, simulator, transform=True, run_at=account.now + timedelta(hours=1))

    def utc(value: str) -> datetime:  # the marts hold UTC without a zone
        return ts(value).replace(tzinfo=None)

    served = {
        b["id"]: (
            utc(b["recovery"]["deleted_at"]),
            b["recovery"]["deletion_method"],
            utc(b["recovery"]["recoverable_until"]),
        )
        for p in account.all_projects()
        for b in account.deleted_branches(p["id"])
    }
    rows = query(
        warehouse,
        "select branch_id, deleted_at, deletion_method, recoverable_until, version_number "
        "from marts.branch_history where is_restorable",
    )
    assert {bid: (d, m, r) for bid, d, m, r, _ in rows} == served and len(rows) == len(served)
    assert leaf in served and {v for *_, v in rows} == {0, 1}  # seen alive, and never seen


def test_access_findings_name_override_admins_collaborators_outside_shares_and_ungranted_projects(
    demo_account, demo_warehouse
):
    """Each finding of the access review, computed from what the account served the key."""
    from runs import served_project_members

    expected = set()
    for project in demo_account.all_projects():
        pid = project["id"]
        members = [
            m for m in served_project_members(demo_account, pid) if m.get("effective_project_permission")
        ]
        for m in members:
            if m["grant_source"] == "org_admin_override":
                expected.add(("admin_by_override", pid, m["member_id"]))
            elif m["org_role"] == "collaborator":
                expected.add(("outside_collaborator", pid, m["member_id"]))
        if project.get("org_id") and not any(
            m["grant_source"] == "explicit" for m in served_project_members(demo_account, pid)
        ):
            expected.add(("no_explicit_grant", pid, None))
        org_emails = (
            {r["user"]["email"].lower() for r in demo_account.members(project["org_id"])}
            if project.get("org_id")
            else None
        )
        for share in demo_account.project_permissions(pid):
            email = share["granted_to_email"].lower()
            if "revoked_at" not in share and org_emails is not None and email not in org_emails:
                expected.add(("shared_outside_organization", pid, email))
    rows = query(
        demo_warehouse, "select finding, project_id, coalesce(member_id, email) from marts.access_findings"
    )
    assert set(rows) == expected and len(rows) == len(expected)
    assert {finding for finding, *_ in expected} == {
        "admin_by_override",
        "outside_collaborator",
        "shared_outside_organization",
        "no_explicit_grant",
    }
