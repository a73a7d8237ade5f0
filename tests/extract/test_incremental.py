"""Incremental runs: after the first run, a run re-reads what Neon signals as changed, re-confirms
the rest on a rolling schedule, and its marts equal a full run's. Expectations come from what the
simulator served and what its day of churn did; runs carry the account's clock (`run_at`), so a
test can live through a week in seconds."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from expected import marts, naive_utc, query
from neon_api_source import Estate, incremental, settings
from neon_api_source.helpers import NeonAPIError, RunStats
from neon_elt.run import StepFailed, elt
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import cli_env, file_digest, run_cli
from suite import client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

SKEW = timedelta(seconds=settings.CLOCK_SKEW_SECONDS)
BRANCHES = "/projects/{project_id}/branches"
ENDPOINTS = "/projects/{project_id}/endpoints"
DATABASES = "/projects/{project_id}/branches/{branch_id}/databases"
ROLES = "/projects/{project_id}/branches/{branch_id}/roles"
OPERATIONS = "/projects/{project_id}/operations"


def account_of(preset: str, seed: int, **changes) -> Account:
    return Account.generate(dataclasses.replace(PRESETS[preset], seed=seed, **changes))


def run(
    warehouse: Path,
    simulator: Simulator,
    *,
    transform: bool = False,
    api_key: str | None = None,
    retry: dict | None = None,
    **options,
):
    """One run into `warehouse`; `options` go to the source (run_at, full_refresh, org_ids, …)."""
    client = client_for(simulator, api_key, **(retry or {}))
    return elt(warehouse, client, do_transform=transform, show_progress=False, **options)


@dataclasses.dataclass
class Confirmed:
    project_id: str
    confirmed_at: datetime
    reason: str
    refresh_due_at: datetime


def confirmations(warehouse: Path) -> dict[tuple[str, str], Confirmed]:
    rows = query(
        warehouse,
        "select object_kind, object_id, project_id, confirmed_at, reason, refresh_due_at "
        "from neon_api_data.confirmations",
    )
    return {(kind, oid): Confirmed(pid, at, reason, due) for kind, oid, pid, at, reason, due in rows}


def read_at(confirmed: dict, kind: str, moment: datetime) -> set[str]:
    return {oid for (k, oid), c in confirmed.items() if k == kind and c.confirmed_at == moment}


def recent_operation(account: Account, project_id: str, since: datetime) -> bool:
    """Whether the project has an operation Neon could have recorded after `since` (clock skew)."""
    cutoff = (since - SKEW).strftime("%Y-%m-%dT%H:%M:%SZ")
    return any(op["updated_at"] >= cutoff for op in account.operations(project_id))


# ------------------------------------------------------------------------------- a day of churn


def rerun(first: Path, account: Account, name: str, **options) -> SimpleNamespace:
    """The day's rerun into a copy of the first run's warehouse: its warehouse, result and what
    the simulator served it."""
    warehouse = first.parent / name / "neon_api.duckdb"
    warehouse.parent.mkdir()
    shutil.copyfile(first, warehouse)
    with Simulator(account) as simulator:
        result = run(warehouse, simulator, transform=True, run_at=account.now, **options)
    return SimpleNamespace(warehouse=warehouse, result=result, served=simulator.stats)


@pytest.fixture(scope="module")
def day_after(tmp_path_factory) -> SimpleNamespace:
    """A 120-project account: a first run, a day of churn (30% of projects active, 5% changed),
    then the incremental rerun from a copy of the first warehouse. The tests only read it."""
    account = account_of("realistic", seed=23)
    first = tmp_path_factory.mktemp("day-after") / "first.duckdb"
    started = account.now
    with Simulator(account) as simulator:
        run(first, simulator, run_at=started)
    before = {p["id"]: {b["id"] for b in account.branches(p["id"])} for p in account.all_projects()}
    happened = account.churn_day(active_share=0.3, changed_share=0.05)
    return SimpleNamespace(
        account=account,
        first=first,
        started=started,
        day=account.now,
        before=before,
        happened=happened,
        incremental=rerun(first, account, "incremental"),
    )


@pytest.fixture(scope="module")
def full_rerun(day_after) -> SimpleNamespace:
    """The same day's rerun as a full one, from another copy of the first warehouse: what the
    incremental one must equal. Built apart (and used by the module's last tests), so no test's
    setup makes both reruns."""
    return rerun(day_after.first, day_after.account, "full", full_refresh=True)


def test_deletions_still_flow_and_what_was_not_re_read_stays_current(day_after):
    warehouse, happened = day_after.incremental.warehouse, day_after.happened
    deleted = {
        r[0]
        for r in query(
            warehouse,
            "select distinct branch_id from marts.branch_history where is_deleted and version_number > 0",
        )
    }
    assert set(happened["branch_deleted"]) <= deleted
    assert deleted == set().union(*day_after.before.values()) - {
        b["id"] for p in day_after.account.all_projects() for b in day_after.account.branches(p["id"])
    }
    current = {
        r[0]
        for r in query(warehouse, "select id from neon_api_data.project_branches where _dlt_valid_to is null")
    }
    carried = set().union(*(day_after.before[pid] for pid in day_after.before)) - deleted
    assert carried <= current


def test_freshness_is_visible_in_the_marts(day_after):
    warehouse = day_after.incremental.warehouse
    confirmed = confirmations(warehouse)
    rows = query(
        warehouse,
        "select branch_id, project_id, confirmed_at, refresh_due_at from marts.project_branch_inventory",
    )
    for branch_id, project_id, confirmed_at, due in rows:  # marts hold UTC timestamps without a zone
        parts = [
            confirmed[("project", project_id)].confirmed_at,
            confirmed[("branch", branch_id)].confirmed_at,
        ]
        assert confirmed_at == naive_utc(min(parts))
        assert due == naive_utc(confirmed[("project", project_id)].refresh_due_at)
    assert {r[2] for r in rows} == {naive_utc(day_after.started), naive_utc(day_after.day)}
    period = timedelta(days=settings.FULL_REFRESH_DAYS)
    for (kind, _), c in confirmed.items():
        if kind == "project" and c.reason == incremental.ROLLING:
            assert c.refresh_due_at == day_after.day + period
        elif kind == "project" and c.confirmed_at == day_after.started:  # the first run's spread
            assert (
                day_after.started
                < c.refresh_due_at
                <= day_after.started + period + incremental.FIRST_SPREAD_OFFSET
            )


def test_after_a_day_of_churn_the_incremental_marts_equal_a_full_run_s(day_after, full_rerun):
    incremental_marts, full_marts = marts(day_after.incremental.warehouse), marts(full_rerun.warehouse)
    assert incremental_marts.keys() == full_marts.keys()
    for name, rows in full_marts.items():  # mart by mart: a diff of all of them takes pytest minutes
        assert incremental_marts[name] == rows, name
    # and both are today's estate, not yesterday's
    account = day_after.account
    inventory = {
        r[0]
        for r in query(
            day_after.incremental.warehouse, "select branch_id from marts.project_branch_inventory"
        )
    }
    assert inventory == {b["id"] for p in account.all_projects() for b in account.branches(p["id"])}
    databases = query(day_after.incremental.warehouse, "select sum(database_count) from marts.projects")[0][0]
    assert databases == sum(
        len(account.databases(p["id"], b["id"]))
        for p in account.all_projects()
        for b in account.branches(p["id"])
    )


def test_the_rerun_reads_what_neon_signalled_and_carries_the_rest(day_after, full_rerun):
    account, happened = day_after.account, day_after.happened
    confirmed = confirmations(day_after.incremental.warehouse)
    projects_read = read_at(confirmed, "project", day_after.day)
    signalled = set(happened["active"]) | set(happened["changed"])
    assert signalled <= projects_read
    # beyond the signals: the day's share of the rolling refresh, and projects with an operation
    # that Neon may have recorded just before the first run read them
    rolling = {pid for pid in projects_read if confirmed[("project", pid)].reason == incremental.ROLLING}
    for pid in projects_read - signalled - rolling:
        assert confirmed[("project", pid)].reason.startswith("operation "), pid
        assert recent_operation(account, pid, day_after.started), pid
    share = len(day_after.before) / settings.FULL_REFRESH_DAYS
    assert 0.5 * share <= len(rolling) <= 1.5 * share
    assert len(projects_read) < len(day_after.before) / 2

    # databases and roles: of the new branches, of branches with a new database, and of the
    # projects read in full; every other branch's are carried
    branches_read = read_at(confirmed, "branch", day_after.day)
    created = set(happened["branch_created"])
    with_new_database = {
        b["id"]
        for pid in happened["changed"]
        for b in account.branches(pid)
        if any(str(d["id"]) in happened["database_created"] for d in account.databases(pid, b["id"]))
    }
    assert created | with_new_database <= branches_read
    in_full = {pid for pid in projects_read if confirmed[("project", pid)].reason in (incremental.ROLLING,)}
    for bid in branches_read - created - with_new_database:
        assert confirmed[("branch", bid)].project_id in in_full or confirmed[
            ("branch", bid)
        ].reason.startswith("operation "), bid
    assert len(branches_read) < len(confirmed) / 2

    # the requests are the plan's: one listing page per project read, two per branch read
    served = day_after.incremental.served.by_route
    assert served[BRANCHES] == served[ENDPOINTS] == len(projects_read)
    assert served[DATABASES] == served[ROLES] == len(branches_read)
    # signals: a page or two of operations per project (the second, empty, ends a short listing)
    assert len(account.all_projects()) <= served[OPERATIONS] <= 2 * len(account.all_projects())
    assert sum(served.values()) < full_rerun.served.total / 2
    plan = day_after.incremental.result.stats.plan
    assert plan.mode == "incremental" and plan.projects_read == len(projects_read)


# ---------------------------------------------------------------------------- rolling refresh


def test_with_no_signal_every_row_is_re_confirmed_within_full_refresh_days_evenly(tmp_path):
    account = account_of("realistic", seed=31)
    warehouse = tmp_path / "neon_api.duckdb"
    period = 3  # a short period: fewer daily runs to live through
    started = account.now + timedelta(hours=1)  # after every operation the account has
    with Simulator(account) as simulator:
        run(warehouse, simulator, run_at=started, consumption=False, full_refresh_days=period)
        daily = []
        for day in range(1, period + 1):
            moment = started + timedelta(days=day)
            result = run(warehouse, simulator, run_at=moment, consumption=False, full_refresh_days=period)
            daily.append(result.stats.plan.project_reasons())
    total = len(account.all_projects())
    assert all(set(reasons) <= {incremental.ROLLING} for reasons in daily)
    rolled = [reasons[incremental.ROLLING] for reasons in daily]
    assert sum(rolled) == total  # each project exactly once in the period
    assert max(rolled) <= 2 * total / period  # spread out: no run is a spike
    assert all(c.confirmed_at > started for c in confirmations(warehouse).values())


# ------------------------------------------------------------------------ full runs, repairs


@pytest.fixture
def demo_run(tmp_path):
    """The demo account after a first run at its clock; the simulator accepts a second key."""
    account = account_of("demo", seed=3)
    other_key = "napi_another_key_of_the_same_user"
    simulator = Simulator(
        account, api_keys={account.personal_api_key: {"kind": "personal"}, other_key: {"kind": "personal"}}
    )
    warehouse = tmp_path / "neon_api.duckdb"
    with simulator:
        started = account.now + timedelta(hours=1)
        first = run(warehouse, simulator, run_at=started)
        yield SimpleNamespace(
            account=account,
            simulator=simulator,
            warehouse=warehouse,
            started=started,
            first=first,
            other_key=other_key,
        )


def _lose_confirmations(warehouse):
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("delete from neon_api_data.confirmations")


def _unfinished_load(warehouse):
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("update neon_api_data.confirmations set _dlt_load_id = '1.0'")


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("lost state", "confirmations are missing"),
        ("unfinished load", "did not complete"),
        ("changed key", "API key changed"),
        ("operations expired", "older than Neon keeps operations"),
        ("asked", incremental.FORCED),
    ],
)
def test_a_run_is_a_full_one_without_asking_when_the_state_cannot_be_trusted(case, why, demo_run):
    options: dict = {"run_at": demo_run.started + timedelta(days=1)}
    if case == "lost state":
        _lose_confirmations(demo_run.warehouse)
    elif case == "unfinished load":
        _unfinished_load(demo_run.warehouse)
    elif case == "changed key":
        options["api_key"] = demo_run.other_key
    elif case == "operations expired":
        options["run_at"] = demo_run.started + timedelta(days=settings.OPERATIONS_RETENTION_DAYS + 1)
    else:
        options["full_refresh"] = True
    demo_run.simulator.reset_stats()
    result = run(demo_run.warehouse, demo_run.simulator, **options)
    assert result.stats.plan.mode == "full" and why in result.stats.plan.reason
    projects = demo_run.account.all_projects()
    assert demo_run.simulator.stats.by_route[BRANCHES] == len(projects)
    assert all(c.confirmed_at == options["run_at"] for c in confirmations(demo_run.warehouse).values())


def test_a_new_organization_makes_a_full_run(tmp_path):
    account = account_of("demo", seed=4)
    first_org, second_org = (o["id"] for o in account.organizations)
    warehouse = tmp_path / "neon_api.duckdb"
    started = account.now + timedelta(hours=1)
    with Simulator(account) as simulator:
        # the key first sees one organization, as a key that joins a second one later
        run(warehouse, simulator, run_at=started, org_ids=[first_org])
        result = run(warehouse, simulator, run_at=started + timedelta(days=1))
    plan = result.stats.plan
    assert plan.mode == "full" and f"new organization {second_org}" == plan.reason
    assert len(plan.projects) == len(account.all_projects())


def test_a_project_whose_rows_do_not_match_its_confirmation_is_read_in_full(demo_run):
    project = demo_run.account.all_projects()[0]["id"]
    with duckdb.connect(str(demo_run.warehouse)) as connection:
        connection.execute(
            "delete from neon_api_data.project_branches where project_id = ? and _dlt_valid_to is null "
            "and id = (select min(id) from neon_api_data.project_branches where project_id = ?)",
            [project, project],
        )
    result = run(demo_run.warehouse, demo_run.simulator, run_at=demo_run.started + timedelta(days=1))
    decisions = result.stats.plan.projects
    assert decisions[project].mode == incremental.FULL and decisions[project].reason == incremental.MISMATCH
    assert {p for p, d in decisions.items() if d.reason == incremental.MISMATCH} == {project}
    current = {
        r[0]
        for r in query(
            demo_run.warehouse,
            "select id from neon_api_data.project_branches where _dlt_valid_to is null and project_id = ?",
            [project],
        )
    }
    assert current == {b["id"] for b in demo_run.account.branches(project)}


def test_operations_that_expired_unseen_make_their_projects_read_in_full(demo_run):
    account = demo_run.account
    seen = {p["id"] for p in account.all_projects() if account.operations(p["id"])}
    account.tick(
        hours=24 * (settings.OPERATIONS_RETENTION_DAYS + 10), project_ids=[]
    )  # time passes, nothing runs
    assert account.expire_operations(settings.OPERATIONS_RETENTION_DAYS) > 0
    result = run(demo_run.warehouse, demo_run.simulator, run_at=demo_run.started + timedelta(days=1))
    gaps = {p for p, d in result.stats.plan.projects.items() if d.reason == incremental.OPERATIONS_GAP}
    assert gaps == seen and all(result.stats.plan.projects[p].mode == incremental.FULL for p in gaps)
    # once read in full, the project's operations start afresh: no gap on the next run
    result = run(demo_run.warehouse, demo_run.simulator, run_at=demo_run.started + timedelta(days=2))
    assert incremental.OPERATIONS_GAP not in result.stats.plan.project_reasons()


def test_a_failed_rerun_leaves_warehouse_and_state_and_the_next_run_plans_from_the_published_one(demo_run):
    account = demo_run.account
    happened = account.churn_day(active_share=0.3, changed_share=0.25)
    before = file_digest(demo_run.warehouse)
    failing = Faults(persistent={ROLES: 503})
    with Simulator(account, faults=failing) as broken, pytest.raises(StepFailed):
        run(demo_run.warehouse, broken, run_at=account.now, retry={"max_attempts": 2})
    assert file_digest(demo_run.warehouse) == before
    result = run(demo_run.warehouse, demo_run.simulator, run_at=account.now)
    read = {p for p, d in result.stats.plan.projects.items() if d.mode != incremental.CARRY}
    assert set(happened["active"]) | set(happened["changed"]) <= read


def test_an_operations_page_neon_no_longer_resolves_leaves_a_gap_and_the_project_is_read_in_full():
    """The first page read, a later one refused (a cursor that no longer resolves): the reading is
    incomplete, so the plan reads the project in full; the run goes on."""

    class RefusingLaterPages:
        base_url = "http://neon.invalid/api/v2"
        stats = RunStats()

        def get(self, route, params=None, validate=None, **path):
            if params and params.get("cursor"):
                raise NeonAPIError(route, 400, "the cursor does not resolve")
            newest = datetime(2026, 11, 2, tzinfo=UTC)
            ops = [
                {
                    "id": f"op-{n}",
                    "created_at": (newest - timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "action": "start_compute",
                }
                for n in range(3)
            ]
            return {"operations": ops, "pagination": {"cursor": "next"}}

    estate = Estate(RefusingLaterPages())
    found, complete = estate._fetch_operations("p-1", "2026-10-01T00:00:00Z", timedelta(hours=24))
    assert [op["id"] for op in found] == ["op-0", "op-1", "op-2"] and not complete
    assert any("read in full" in note for note in estate.stats.notes)
    # a reading that reaches back to the last operation seen is complete
    found, complete = estate._fetch_operations("p-1", "2026-11-01T23:00:00Z", timedelta(0))
    assert complete


def test_the_plan_flag_prints_the_plan_and_loads_nothing(demo_run, tmp_path):
    account = demo_run.account
    happened = account.churn_day(active_share=0.25, changed_share=0.25)
    before = file_digest(demo_run.warehouse)
    env = cli_env(demo_run.warehouse, demo_run.simulator)
    result = run_cli("extract", "--plan", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "incremental run: re-read" in result.stdout and "Nothing was loaded" in result.stdout
    for pid in set(happened["active"]) | set(happened["changed"]):
        assert pid in result.stdout
    assert file_digest(demo_run.warehouse) == before
    assert not list(tmp_path.glob("*.building"))


def test_the_run_summary_says_what_was_re_read(demo_run, tmp_path):
    account = demo_run.account
    account.churn_day(active_share=0.25, changed_share=0)
    result = run_cli("extract", env=cli_env(demo_run.warehouse, demo_run.simulator), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    confirmed = confirmations(demo_run.warehouse)
    read = {
        oid
        for (kind, oid), c in confirmed.items()
        if kind == "project" and c.confirmed_at != demo_run.started
    }
    branches = sum(
        1 for (kind, _), c in confirmed.items() if kind == "branch" and c.confirmed_at != demo_run.started
    )
    assert read
    summary = (
        f"incremental run: re-read {len(read)} of {len(account.all_projects())} projects and the "
        f"databases and roles of {branches} of"
    )
    assert summary in result.stdout
