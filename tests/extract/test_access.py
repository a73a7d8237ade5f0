"""Who can reach the estate: the access listings the extract lands, how fresh the per-project ones
stay, and what a key could not see. Expected rows come from what the simulator served."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
import yaml
from expected import (
    ACCESS_RELATIONS,
    access_review_rows,
    project_security_rows,
    query,
    query_dicts,
    relations_holding,
    visible_to_the_personal_key,
)
from neon_api_source import incremental, listings
from neon_api_source.access import hash_email
from neon_elt.report import write
from neon_elt.targets import DuckDBTarget
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import cli_env, extract, run_cli
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

PERMISSIONS = "/projects/{project_id}/permissions"
BRANCHES = "/projects/{project_id}/branches"


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def served_members(account: Account, emails=lambda e: e) -> set[tuple]:
    return {
        (
            m["member"]["id"],
            m["member"]["user_id"],
            org["id"],
            m["member"]["role"],
            ts(m["member"].get("joined_at")),
            emails(m["user"]["email"]),
            m["user"].get("has_mfa"),
            ts(m["user"].get("deactivated_at")),
        )
        for org in account.organizations
        for m in account.members(org["id"])
    }


def served_shares(account: Account, emails=lambda e: e) -> set[tuple]:
    return {
        (p["id"], s["id"], emails(s["granted_to_email"]), ts(s["granted_at"]), ts(s.get("revoked_at")))
        for p in account.all_projects()
        for s in account.project_permissions(p["id"])
    }


def landed_members(warehouse: Path) -> set[tuple]:
    return set(
        query(
            warehouse,
            "select id, user_id, org_id, role, joined_at, email, has_mfa, deactivated_at "
            "from neon_api_data.organization_members",
        )
    )


def landed_shares(warehouse: Path) -> set[tuple]:
    return set(
        query(
            warehouse,
            "select project_id, id, granted_to_email, granted_at, revoked_at from neon_api_data.project_permissions",
        )
    )


def coverage(warehouse: Path) -> dict[tuple[str, str], dict]:
    rows = query(
        warehouse,
        "select listing, scope_id, is_visible, status, detail, read_reason, confirmed_at "
        "from neon_api_data.access_coverage",
    )
    names = ("is_visible", "status", "detail", "read_reason", "confirmed_at")
    return {(listing, scope): dict(zip(names, rest, strict=True)) for listing, scope, *rest in rows}


# ---------------------------------------------------------------------------- what lands


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


# ------------------------------------------------------------------- freshness of shares


@pytest.fixture
def demo_run(tmp_path) -> SimpleNamespace:
    account = Account.generate(dataclasses.replace(PRESETS["demo"], seed=5))
    warehouse = tmp_path / "neon_api.duckdb"
    simulator = Simulator(account)
    with simulator:
        started = account.now + timedelta(hours=1)
        first = extract(warehouse, simulator, run_at=started)
        yield SimpleNamespace(
            account=account, simulator=simulator, warehouse=warehouse, started=started, first=first
        )


def test_the_summary_says_what_the_key_could_not_read_and_names_nobody(demo_run):
    """The personal key's user is a plain member of one organization: two summary lines, and no
    address anywhere in the summary."""
    from neon_elt.progress import summary

    text = summary(demo_run.first.stats, demo_run.first.load_id, demo_run.first.table_rows)
    account = demo_run.account
    for listing, name in (("API keys", "api_keys"), ("VPC endpoints", "vpc_endpoints")):
        hidden = sum(not visible_to_the_personal_key(account, o["id"])[name] for o in account.organizations)
        noted = re.findall(rf"skipped: organization {listing} of (\d+) organizations?: 403", text)
        assert hidden > 0 and sum(map(int, noted)) == hidden  # a line per reason Neon gave
    assert "access review: shares of all" in text
    assert not [e for e in demo_run.account.served_emails() if e in text]


def test_shares_are_carried_until_the_project_is_read_in_full(demo_run):
    """A share granted after the first run leaves no signal: the next day's run carries the
    project's shares with the time they were read, and the project's full reading (here asked
    for) brings the new one in."""
    account, warehouse = demo_run.account, demo_run.warehouse
    # the project the rolling refresh reaches last
    ((project,),) = query(
        warehouse,
        "select object_id from neon_api_data.confirmations where object_kind = 'project' "
        "order by refresh_due_at desc limit 1",
    )
    granted = account.grant_project_access(project, "new.partner@elsewhere.example")
    next_day = demo_run.started + timedelta(days=1)
    demo_run.simulator.reset_stats()
    result = extract(warehouse, demo_run.simulator, run_at=next_day)
    plan = result.stats.plan
    in_full = {pid for pid, d in plan.projects.items() if d.mode == incremental.FULL}
    assert demo_run.simulator.stats.by_route[PERMISSIONS] == len(in_full) < len(plan.projects)
    found = coverage(warehouse)
    for pid in plan.projects:
        read_at = found[("project_permissions", pid)]["confirmed_at"]
        assert read_at == (next_day if pid in in_full else demo_run.started)
    assert project not in in_full
    assert granted["id"] not in {row[1] for row in landed_shares(warehouse) if row[0] == project}
    carried = (
        f"access review: shares of {len(in_full)} of {len(plan.projects)} projects read, the rest carried"
    )
    assert any(note.startswith(carried) for note in result.stats.notes), result.stats.notes

    extract(
        warehouse,
        demo_run.simulator,
        run_at=next_day + timedelta(hours=1),
        source_options={"full_refresh": True},
    )
    assert landed_shares(warehouse) == served_shares(account)


def test_the_summary_counts_the_shares_read_not_those_confirmed_at_the_run_s_moment(demo_run):
    """A rerun at the first run's moment (tests move the clock; two scheduled runs never share
    one) reads no share, and says so: carried rows keep the moment they were read."""
    demo_run.simulator.reset_stats()
    result = extract(demo_run.warehouse, demo_run.simulator, run_at=demo_run.started)
    projects = len(result.stats.plan.projects)
    assert demo_run.simulator.stats.by_route[PERMISSIONS] == 0
    assert any(
        note.startswith(f"access review: shares of 0 of {projects} projects read")
        for note in result.stats.notes
    ), result.stats.notes


def test_turning_on_hash_emails_re_reads_every_share_and_leaves_no_address(demo_run):
    salt = "a-salt-of-sixteen-or-more"
    account, warehouse = demo_run.account, demo_run.warehouse
    demo_run.simulator.reset_stats()
    extract(
        warehouse,
        demo_run.simulator,
        run_at=demo_run.started + timedelta(days=1),
        source_options={"hash_emails": True, "email_hash_salt": salt},
    )
    assert demo_run.simulator.stats.by_route[PERMISSIONS] == len(account.all_projects())
    hashed = lambda email: hash_email(email, salt)  # noqa: E731
    assert landed_shares(warehouse) == served_shares(account, hashed)
    assert landed_members(warehouse) == served_members(account, hashed)
    reasons = {
        c["read_reason"]
        for (listing, _), c in coverage(warehouse).items()
        if listing == "project_permissions"
    }
    assert incremental.EMAIL_SETTING_CHANGED in reasons


def test_access_rows_the_warehouse_cannot_give_back_make_a_full_run(demo_run):
    """The last run's state is read once, and any part of it that cannot be read (here the
    access coverage, as in a warehouse loaded before the access review) makes the run a full one
    that says why, as a missing confirmation does: not an incremental run that carries no shares."""
    with duckdb.connect(str(demo_run.warehouse)) as connection:
        connection.execute("drop table neon_api_data.access_coverage")
        connection.execute("delete from neon_api_data._dlt_version")  # dlt creates the table anew
    demo_run.simulator.reset_stats()
    result = extract(demo_run.warehouse, demo_run.simulator, run_at=demo_run.started + timedelta(days=1))
    plan = result.stats.plan
    assert plan.mode == "full" and "could not be read" in plan.reason
    served, projects = demo_run.simulator.stats.by_route, demo_run.account.all_projects()
    assert served[BRANCHES] == served[PERMISSIONS] == len(projects)
    assert landed_shares(demo_run.warehouse) == served_shares(demo_run.account)


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


# ---------------------------------------------------------------------- the email setting


def test_hash_emails_without_a_salt_stops_before_any_request(demo_account, tmp_path):
    with Simulator(demo_account) as simulator:
        env = cli_env(tmp_path / "neon_api.duckdb", simulator, SOURCES__NEON_API_SOURCE__HASH_EMAILS="true")
        result = run_cli("extract", env=env, cwd=tmp_path)
        assert simulator.stats.total == 0
    assert result.returncode == 2
    assert "hash_emails is on but email_hash_salt is missing" in result.stderr
    assert not (tmp_path / "neon_api.duckdb").exists()


def test_hash_email_prints_what_the_warehouse_holds_for_an_address(tmp_path):
    """The setting read from .dlt/config.toml, the salt from .dlt/secrets.toml, as a user sets them."""
    salt = "correct-horse-battery-staple"
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.neon_api_source]\nhash_emails = true\n")
    (tmp_path / ".dlt" / "secrets.toml").write_text(
        f'[sources.neon_api_source]\nemail_hash_salt = "{salt}"\n'
    )
    result = run_cli(
        "hash-email", "Ada.Lovelace@example.com", env=cli_env(tmp_path / "w.duckdb"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == hash_email("ada.lovelace@example.com", salt)
    assert salt not in result.stdout + result.stderr


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
