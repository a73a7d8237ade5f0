"""How fresh the per-project access listings stay across runs, and the email setting: shares carried
until a project is read in full, and addresses hashed before they land. Expected rows come from
what the simulator served."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from types import SimpleNamespace

import duckdb
import pytest
from access_helpers import coverage, landed_members, landed_shares, served_members, served_shares
from expected import (
    query,
    visible_to_the_personal_key,
)
from neon_api_source import incremental
from neon_api_source.access import hash_email
from neon_simulator import PRESETS, Account, Simulator
from runs import cli_env, extract, run_cli

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

PERMISSIONS = "/projects/{project_id}/permissions"
BRANCHES = "/projects/{project_id}/branches"


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
