"""The extract of branch consumption (`GET /consumption_history/v2/branches`) against the
simulator: what lands, how it is asked for (a hundred projects a request, the six metrics, complete
UTC days), the look-back of later runs, plans without it, and its share of the rate limit. Counts
and values are computed from the account the simulator served."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from expected import query
from neon_api_source import consumption, listings, settings
from neon_api_source.limiter import neon_rate_limiter
from neon_elt import memory
from neon_elt.run import elt
from neon_simulator import PRESETS, Account, AccountSpec, Simulator
from neon_simulator.reference import BRANCH_CONSUMPTION_PLANS
from runs import (
    consumption_window,
    expected_table_counts,
    extract,
    hourly_consumption_window,
    landed_counts,
    served_hourly,
)
from suite import client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROUTE = listings.BRANCH_CONSUMPTION.route


def served_branch_days(account: Account, now: datetime) -> dict[tuple[str, object, str], int]:
    """(branch, UTC day, metric) -> value, over the days a first run asks for, for the
    organizations whose plan has branch consumption."""
    start, end = consumption_window(now)
    plans = {o["id"]: o["plan"] for o in account.organizations}
    values = {}
    for project in account.all_projects():
        if project.get("org_id") not in account.plan_org_ids():
            continue
        if plans[project["org_id"]] not in BRANCH_CONSUMPTION_PLANS:
            continue
        for branch_id, frames in account.branch_consumption(project["id"]).items():
            for frame in frames:
                day = datetime.fromisoformat(frame["timeframe_start"].replace("Z", "+00:00"))
                if start <= day < end:
                    for metric, value in frame["metrics"].items():
                        values[(branch_id, day.date(), metric)] = value
    return values


def landed_branch_days(warehouse) -> dict[tuple[str, object, str], int]:
    return {
        (branch_id, day, metric): value
        for branch_id, day, metric, value in query(
            warehouse,
            "select branch_id, cast(timeframe_start as date), metric_name, value "
            "from neon_api_data.branch_consumption",
        )
    }


def recording(client) -> list[tuple[str, dict]]:
    """Every (route, params) the client sends from now on."""
    sent: list[tuple[str, dict]] = []
    get = client.get

    def recorded(route, params=None, *args, **kwargs):
        sent.append((route, dict(params or {})))
        return get(route, params, *args, **kwargs)

    client.get = recorded
    return sent


def test_branch_consumption_lands_what_the_simulator_served(demo_account, demo_warehouse):
    """The session's demo run: every branch, day and metric served, complete UTC days only, and a
    project's branches add up to its consumption on the days both cover."""
    (run_day,) = query(
        demo_warehouse, "select distinct cast(snapshot_at as date) from neon_api_data.project_snapshots"
    )[0]
    expected = served_branch_days(demo_account, datetime.combine(run_day, datetime.min.time(), UTC))
    assert expected, "the demo's paid organization has branch consumption"
    assert landed_branch_days(demo_warehouse) == expected
    sums = query(
        demo_warehouse,
        """select b.project_id, cast(b.timeframe_start as date), b.metric_name, sum(b.value), max(p.value)
           from neon_api_data.branch_consumption as b
           inner join neon_api_data.consumption as p
               on b.project_id = p.project_id and b.timeframe_start = p.timeframe_start
               and b.metric_name = p.metric_name
           group by 1, 2, 3""",
    )
    assert sums and all(total == project for *_key, total, project in sums)


def test_a_hundred_projects_a_request_six_metrics_and_complete_days(tmp_path, monkeypatch):
    """250 projects of one organization take three batches of at most 100 projects; a small page
    size makes each batch page through its branches, each page asked for once."""
    monkeypatch.setattr(listings.BRANCH_CONSUMPTION, "page_limit", 40)
    account = Account.generate(
        AccountSpec(seed=5, orgs=1, projects=250, branches_per_project=1.3, operations_per_project=1)
    )
    account._org_by_id[account.organizations[0]["id"]]["plan"] = "scale"  # a usage-based plan
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        client = client_for(simulator)
        sent = recording(client)
        elt(warehouse, client, do_transform=False, show_progress=False, run_at=account.now)
        served = simulator.stats.by_request
    asked = [params for route, params in sent if route == ROUTE]
    batches = defaultdict(list)
    for params in asked:
        assert params["metrics"] == ",".join(settings.BRANCH_CONSUMPTION_METRICS)
        assert params["granularity"] == "daily" and params["limit"] == 40
        assert params["to"] == account.now.strftime("%Y-%m-%dT00:00:00Z")  # complete days only
        batches[params["project_ids"]].append(params.get("cursor"))
    ids = [batch.split(",") for batch in batches]
    assert [len(batch) for batch in ids] == [100, 100, 50]
    assert sorted(pid for batch in ids for pid in batch) == sorted(p["id"] for p in account.all_projects())
    assert all(len(cursors) > 1 and cursors[0] is None for cursors in batches.values())
    assert max(served.values()) == 1
    assert landed_branch_days(warehouse) == served_branch_days(account, account.now)
    assert landed_counts(warehouse) == expected_table_counts(account, account.now)


def test_later_runs_read_back_only_the_look_back(tmp_path):
    account = Account.generate(PRESETS["demo"])
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        first = extract(warehouse, simulator)
        account.tick(24)
        second = extract(warehouse, simulator)
    first_last = max(
        day for _branch, day, _metric in served_branch_days(account, account.now - timedelta(days=1))
    )
    reread = {
        key: value
        for key, value in served_branch_days(account, account.now).items()
        if key[1] >= first_last - timedelta(days=settings.CONSUMPTION_LOOKBACK_DAYS)
    }
    # the second run asked from the look-back on, and found the day that ended since
    assert second.table_rows["branch_consumption"] == len(reread) < first.table_rows["branch_consumption"]
    assert max(day for _branch, day, _metric in reread) == first_last + timedelta(days=1)
    assert landed_branch_days(warehouse) == served_branch_days(account, account.now)


def test_plans_without_branch_consumption_are_noted_and_skipped(tmp_path):
    """A Business plan has project consumption but not branch consumption (403), a free plan has
    neither: each is one line of the summary, and the rest of the run goes on."""
    account = Account.generate(dataclasses.replace(PRESETS["demo"], consumption_plan_orgs=2))
    business = account.organizations[1]["id"]
    account._org_by_id[business]["plan"] = "business"
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        result = extract(warehouse, simulator)
    skipped = [s for s in result.stats.skipped_optional if s.startswith("branch consumption")]
    assert len(skipped) == 1 and skipped[0].startswith(f"branch consumption for {business}: 403 ")
    assert "Launch, Scale, Agent, or Enterprise" in skipped[0]
    landed_projects = {
        pid for (pid,) in query(warehouse, "select distinct project_id from neon_api_data.branch_consumption")
    }
    assert landed_projects == {p["id"] for p in account.all_projects(account.organizations[0]["id"])}
    assert business in {
        o for (o,) in query(warehouse, "select distinct org_id from neon_api_data.consumption")
    }


def test_no_consumption_loads_no_branch_consumption(tmp_path):
    account = Account.generate(PRESETS["tiny"])
    with Simulator(account) as simulator:
        client = client_for(simulator)
        result = elt(
            tmp_path / "neon_api.duckdb", client, do_transform=False, show_progress=False, consumption=False
        )
        assert simulator.stats.by_route.get(ROUTE, 0) == 0
    assert result.table_rows.get("branch_consumption", 0) == 0


@pytest.mark.parametrize("route", listings.CONSUMPTION_ROUTES)
def test_each_consumption_route_keeps_to_neon_s_consumption_limit(route):
    """The client's limiter paces both consumption routes at about 30 requests per minute: after
    the burst, a request every two seconds (a fake clock, so the test does not wait)."""
    now = [1000.0]

    def wait(condition, seconds: float) -> None:  # nothing else runs: waiting moves the clock on
        now[0] += seconds

    limiter = neon_rate_limiter(settings.REQUESTS_PER_MINUTE, clock=lambda: now[0], wait=wait)
    for _ in range(20):
        limiter.acquire(route)
    per_minute = 60 * 20 / (now[0] - 1000.0)
    assert (
        settings.CONSUMPTION_REQUESTS_PER_MINUTE * 0.9
        <= per_minute
        <= settings.CONSUMPTION_REQUESTS_PER_MINUTE * 1.5
    )
    start = now[0]
    for _ in range(20):
        limiter.acquire("/projects/{project_id}/branches")
    assert now[0] - start < 5, "other routes keep the account's pace"


def test_a_day_that_has_not_ended_is_never_loaded():
    """Were Neon to answer the running day too (a `to` read as inclusive), it is dropped: both
    consumption tables hold complete UTC days only."""

    def day(start: str, end: str) -> dict:
        return {
            "timeframe_start": start,
            "timeframe_end": end,
            "metrics": [{"metric_name": "compute_unit_seconds", "value": 1}],
        }

    period = {"period_id": "p", "period_plan": "scale", "period_start": "2026-05-01T00:00:00Z"}
    frames = [
        day("2026-05-09T00:00:00Z", "2026-05-10T00:00:00Z"),
        day("2026-05-10T00:00:00Z", "2026-05-11T00:00:00Z"),
    ]
    page = [{"project_id": "p-1", "branch_id": "br-1", "periods": [{**period, "consumption": frames}]}]
    for listing in (listings.CONSUMPTION, listings.BRANCH_CONSUMPTION):
        rows = consumption.to_table(listing, "org-1", page, before="2026-05-10T00:00:00Z").to_pylist()
        assert [r["timeframe_start"].day for r in rows] == [9]


# ------------------------------------------------------------------ history kept, only new days read


def landed_hourly(warehouse) -> dict[tuple[str, datetime, str], int]:
    return {
        (project_id, hour, metric): value
        for project_id, hour, metric, value in query(
            warehouse,
            "select project_id, timeframe_start, metric_name, value from neon_api_data.consumption_hourly",
        )
    }


def landed_project_days(warehouse) -> dict[tuple[str, object, str], int]:
    return {
        (project_id, day, metric): value
        for project_id, day, metric, value in query(
            warehouse,
            "select project_id, cast(timeframe_start as date), metric_name, value "
            "from neon_api_data.consumption",
        )
    }


def served_project_days(
    account: Account, start: datetime, end: datetime
) -> dict[tuple[str, object, str], int]:
    values = {}
    for project in account.all_projects():
        if project.get("org_id") not in account.plan_org_ids():
            continue
        for frame in account.consumption(project["id"]):
            day = datetime.fromisoformat(frame["timeframe_start"].replace("Z", "+00:00"))
            if start <= day < end:
                for metric, value in frame["metrics"].items():
                    values[(project["id"], day.date(), metric)] = value
    return values


def duplicates(warehouse) -> dict[str, int]:
    """Rows beyond the first of each key, per consumption table: a re-read day must replace."""
    keys = {
        "consumption": "project_id, timeframe_start, metric_name",
        "consumption_hourly": "project_id, timeframe_start, metric_name",
        "branch_consumption": "branch_id, timeframe_start, metric_name",
    }
    return {
        table: query(
            warehouse,
            f"select count(*) - count(distinct ({key})) from neon_api_data.{table}",
        )[0][0]
        for table, key in keys.items()
    }


def consumption_requests(sent: list[tuple[str, dict]], account: Account) -> dict[str, list[dict]]:
    """The consumption requests sent for organizations with consumption history (a free one's
    answer 403, and are asked again each run), by what they read: daily, hourly, branch."""
    asked: dict[str, list[dict]] = defaultdict(list)
    for route, params in sent:
        if params.get("org_id") not in account.plan_org_ids():
            continue
        if route == listings.CONSUMPTION.route:
            asked[params["granularity"]].append(params)
        elif route == ROUTE:
            asked["branch"].append(params)
    return asked


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_hourly_consumption_lands_the_complete_hours_served(tmp_path):
    """The last 168 complete hours of the hourly metrics, of the organizations with consumption
    history; the free one is noted and skipped."""
    account = Account.generate(PRESETS["demo"])
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        client = client_for(simulator)
        sent = recording(client)
        result = elt(warehouse, client, do_transform=False, show_progress=False, run_at=account.now)
    start, end = hourly_consumption_window(account.now)
    expected = served_hourly(account, start, end)
    assert expected, "the demo has a project past its branch allowance"
    assert landed_hourly(warehouse) == expected
    hourly = consumption_requests(sent, account)["hourly"]
    assert {(p["from"], p["to"], p["metrics"]) for p in hourly} == {
        (iso(start), iso(end), ",".join(settings.HOURLY_CONSUMPTION_METRICS))
    }
    (free,) = [o["id"] for o in account.organizations if o["id"] not in account.plan_org_ids()]
    skipped = [s for s in result.stats.skipped_optional if s.startswith("hourly consumption")]
    assert len(skipped) == 1 and skipped[0].startswith(f"hourly consumption for {free}: 403 ")


@pytest.mark.parametrize("in_parts", [False, True], ids=["one load", "a load per organization"])
def test_a_rerun_the_next_day_asks_only_for_what_is_new_and_keeps_the_rest(tmp_path, monkeypatch, in_parts):
    """The second run, a day later into the same warehouse (dlt's local state gone, as the runner
    leaves it), asks each consumption route for the days (hours) after the last one loaded, less
    the look-back, and the warehouse then holds every day either run read, once; also when each
    organization's consumption is loaded apart, as a large account's is (memory.py)."""
    if in_parts:
        monkeypatch.setattr(memory, "CONSUMPTION_LOAD_MAX_PROJECTS", 1)
    account = Account.generate(PRESETS["demo"])
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        first_at = account.now
        extract(warehouse, simulator)
        (last_day,) = query(warehouse, "select max(timeframe_start) from neon_api_data.consumption")[0]
        (last_branch_day,) = query(
            warehouse, "select max(timeframe_start) from neon_api_data.branch_consumption"
        )[0]
        account.tick(24)
        client = client_for(simulator)
        sent = recording(client)
        elt(warehouse, client, do_transform=False, show_progress=False, run_at=account.now)
    asked = consumption_requests(sent, account)
    lookback = timedelta(days=settings.CONSUMPTION_LOOKBACK_DAYS)
    today = account.now.replace(hour=0)
    assert {(p["from"], p["to"]) for p in asked["daily"]} == {(iso(last_day - lookback), iso(today))}
    assert {(p["from"], p["to"]) for p in asked["branch"]} == {(iso(last_branch_day - lookback), iso(today))}
    last_hour = first_at - timedelta(hours=1)
    assert {(p["from"], p["to"]) for p in asked["hourly"]} == {
        (iso(last_hour - timedelta(hours=settings.HOURLY_CONSUMPTION_LOOKBACK_HOURS)), iso(account.now))
    }
    assert (today - (last_day - lookback)).days < settings.CONSUMPTION_HISTORY_DAYS / 10
    first_start, _ = consumption_window(first_at)
    assert landed_project_days(warehouse) == served_project_days(account, first_start, today)
    assert landed_branch_days(warehouse) == served_branch_days(account, account.now) | served_branch_days(
        account, first_at
    )
    first_hour, _ = hourly_consumption_window(first_at)
    assert landed_hourly(warehouse) == served_hourly(account, first_hour, account.now)
    assert duplicates(warehouse) == {table: 0 for table in duplicates(warehouse)}
    # each run: a load per organization's consumption, then the rest
    loads_per_run = len(account.organizations) + 1 if in_parts else 1
    assert query(warehouse, "select count(*) from neon_api_data._dlt_loads") == [(2 * loads_per_run,)]


def test_a_full_refresh_re_reads_neon_s_reach_and_keeps_what_neon_no_longer_serves(tmp_path):
    """`--full-refresh` re-reads the 60 days (168 hours) Neon serves; the day (hours) the first
    run read that have since left Neon's reach stay in the warehouse."""
    spec = dataclasses.replace(PRESETS["demo"], consumption_days=60, branch_consumption_days=None)
    account = Account.generate(spec)
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        first_at = account.now
        extract(warehouse, simulator)
        account.tick(24)
        client = client_for(simulator)
        sent = recording(client)
        elt(warehouse, client, do_transform=False, show_progress=False, run_at=account.now, full_refresh=True)
    asked = consumption_requests(sent, account)
    first_day, _ = consumption_window(first_at)
    reach_day, today = consumption_window(account.now)
    assert {p["from"] for p in asked["daily"] + asked["branch"]} == {iso(reach_day)}
    first_hour, _ = hourly_consumption_window(first_at)
    reach_hour, _ = hourly_consumption_window(account.now)
    assert {p["from"] for p in asked["hourly"]} == {iso(reach_hour)}
    assert first_day < reach_day
    landed = landed_project_days(warehouse)
    assert landed == served_project_days(account, first_day, today)
    assert min(day for _, day, _ in landed) == first_day.date()
    assert landed_branch_days(warehouse) == served_branch_days(account, account.now) | served_branch_days(
        account, first_at
    )
    assert landed_hourly(warehouse) == served_hourly(account, first_hour, account.now)
    assert duplicates(warehouse) == {table: 0 for table in duplicates(warehouse)}
