"""The new marts (projects, stale_branches, daily_consumption, branch_history) and the regional
shares, against numbers computed here from the account the simulator served. Nothing is typed
in: staleness is recomputed from the computes' `last_active` values, with the mart's own
`observed_at` as the reference time and `stale_after_days` read from dbt_project.yml."""

from __future__ import annotations

import html
import math
import shutil
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import duckdb
import pytest
from expected import account_totals, dbt_vars, marts_timestamp, query, query_dicts
from neon_api_source import settings
from neon_elt import report, run, targets
from neon_elt.run import elt
from runs import cli_env, run_cli

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

STALE_AFTER_DAYS = dbt_vars()["stale_after_days"]


@pytest.fixture(scope="module")
def observed_at(demo_warehouse) -> datetime:
    """When the run read the counters: the reference time of every age in the marts."""
    (moments,) = query(demo_warehouse, "select distinct observed_at from marts.project_branch_inventory")
    assert len(moments) == 1
    return moments[0]


@pytest.fixture(scope="module")
def branch_activity(demo_account, observed_at) -> dict[str, dict]:
    """Per branch id: its last activity, idle days and staleness, from the served data."""
    facts = {}
    for project in demo_account.all_projects():
        pid = project["id"]
        last_active = defaultdict(list)
        for endpoint in demo_account.endpoints(pid):
            if "last_active" in endpoint:
                last_active[endpoint["branch_id"]].append(marts_timestamp(endpoint["last_active"]))
        for branch in demo_account.branches(pid):
            bid = branch["id"]
            last = max(last_active[bid]) if last_active[bid] else marts_timestamp(branch["created_at"])
            idle_days = (observed_at.date() - last.date()).days
            facts[bid] = {
                "project_id": pid,
                "last_activity_at": last,
                "days_since_activity": idle_days,
                "is_stale": not branch["default"] and idle_days >= STALE_AFTER_DAYS,
                "logical_size_bytes": branch.get("logical_size"),
                "endpoint_count": sum(1 for e in demo_account.endpoints(pid) if e["branch_id"] == bid),
            }
    return facts


def consumption_frames(account, observed_at) -> dict[tuple[str, date, str], int]:
    """(project, UTC day, metric) -> value, over the days the extract asks Neon for: from
    CONSUMPTION_HISTORY_DAYS back to the run's day, which Neon leaves out (the spec rounds `to`
    down to the day, so the running day arrives with the next run)."""
    first_day = observed_at.date() - timedelta(days=settings.CONSUMPTION_HISTORY_DAYS - 1)
    values = {}
    for project in account.all_projects():
        for frame in account.consumption(project["id"]):
            day = marts_timestamp(frame["timeframe_start"]).date()
            if first_day <= day < observed_at.date():
                for metric, value in frame["metrics"].items():
                    values[(project["id"], day, metric)] = value
    return values


def cost_window(observed_at) -> set[date]:
    """The 30 complete UTC days before the run's day: the marts' `…_last_30_days`."""
    return {observed_at.date() - timedelta(days=n) for n in range(1, 31)}


def test_staleness_in_the_inventory_follows_the_computes_last_activity(demo_warehouse, branch_activity):
    rows = query_dicts(
        demo_warehouse,
        "select branch_id, last_activity_at, days_since_activity, is_stale "
        "from marts.project_branch_inventory",
    )
    actual = {row.pop("branch_id"): row for row in rows}
    expected = {
        bid: {k: facts[k] for k in ("last_activity_at", "days_since_activity", "is_stale")}
        for bid, facts in branch_activity.items()
    }
    assert actual == expected
    assert any(f["is_stale"] for f in expected.values()), "the demo account should have stale branches"
    assert not all(f["is_stale"] for f in expected.values())


def test_stale_branches_is_the_clean_up_list_biggest_first(demo_warehouse, branch_activity):
    rows = query_dicts(
        demo_warehouse,
        "select cleanup_rank, branch_id, project_id, logical_size_bytes, cumulative_logical_size_bytes, "
        "days_since_activity, endpoint_count from marts.stale_branches order by cleanup_rank",
    )
    stale = {bid: f for bid, f in branch_activity.items() if f["is_stale"]}
    assert {r["branch_id"] for r in rows} == set(stale)
    assert len(rows) == len(stale)

    # cleanup_rank is the clean-up order: biggest first, NULL sizes last, ties by branch id
    assert [r["cleanup_rank"] for r in rows] == list(range(1, len(rows) + 1))
    expected_order = sorted(
        stale,
        key=lambda bid: (
            stale[bid]["logical_size_bytes"] is None,
            -(stale[bid]["logical_size_bytes"] or 0),
            bid,
        ),
    )
    assert [r["branch_id"] for r in rows] == expected_order

    running = 0
    for row in rows:
        facts = stale[row["branch_id"]]
        running += facts["logical_size_bytes"] or 0
        assert row["cumulative_logical_size_bytes"] == running
        assert row["project_id"] == facts["project_id"]
        assert row["logical_size_bytes"] == facts["logical_size_bytes"]
        assert row["days_since_activity"] == facts["days_since_activity"] >= STALE_AFTER_DAYS
        assert row["endpoint_count"] == facts["endpoint_count"]


def test_projects_has_one_row_per_project_with_its_counts(demo_account, demo_warehouse, branch_activity):
    rows = query_dicts(demo_warehouse, "select * from marts.projects")
    actual = {row["project_id"]: row for row in rows}
    projects = demo_account.all_projects()
    assert len(rows) == len(projects) == len(actual)
    for project in projects:
        pid = project["id"]
        branches = demo_account.branches(pid)
        endpoints = demo_account.endpoints(pid)
        types = Counter(e["type"] for e in endpoints)
        states = Counter(e["current_state"] for e in endpoints)
        last_active = [marts_timestamp(e["last_active"]) for e in endpoints if "last_active" in e]
        (default,) = [b for b in branches if b["default"]]
        stale = [b for b in branches if branch_activity[b["id"]]["is_stale"]]
        sizes = [b.get("logical_size") for b in branches]
        expected = {
            "project_name": project["name"],
            "org_id": project.get("org_id"),
            "region_id": project["region_id"],
            "pg_version": project["pg_version"],
            "default_branch_id": default["id"],
            "default_branch_name": default["name"],
            "branch_count": len(branches),
            "stale_branch_count": len(stale),
            "endpoint_count": len(endpoints),
            "read_write_endpoint_count": types["read_write"],
            "read_only_endpoint_count": types["read_only"],
            "active_endpoint_count": states["active"],
            "idle_endpoint_count": states["idle"],
            "database_count": sum(len(demo_account.databases(pid, b["id"])) for b in branches),
            "role_count": sum(len(demo_account.roles(pid, b["id"])) for b in branches),
            "logical_size_bytes": sum(s or 0 for s in sizes),
            "stale_logical_size_bytes": sum(b.get("logical_size") or 0 for b in stale),
            "synthetic_storage_size_bytes": project.get("synthetic_storage_size"),
            "compute_time_seconds": sum(b["compute_time_seconds"] for b in branches),
            "last_compute_active_at": max(last_active) if last_active else None,
            "operation_count": len(demo_account.operations(pid)),
            "failed_operation_count": sum(
                1 for op in demo_account.operations(pid) if op["status"] in ("failed", "error")
            ),
            "created_at": marts_timestamp(project["created_at"]),
            "refresh_grace_hours": dbt_vars()["refresh_grace_hours"],  # what the freshness test allows
        }
        assert {k: actual[pid][k] for k in expected} == expected, pid


def test_projects_sum_the_last_30_days_of_consumption(demo_account, demo_warehouse, observed_at):
    frames = consumption_frames(demo_account, observed_at)
    window = cost_window(observed_at)
    expected = {}
    for project in demo_account.all_projects():
        days = [
            v
            for (pid, day, metric), v in frames.items()
            if pid == project["id"] and day in window and metric == "compute_unit_seconds"
        ]
        last = [day for (pid, day, _metric) in frames if pid == project["id"]]
        expected[project["id"]] = (sum(days) if days else None, max(last) if last else None)
    actual = {
        pid: (compute, last)
        for pid, compute, last in query(
            demo_warehouse,
            "select project_id, compute_unit_seconds_last_30_days, last_consumption_date from marts.projects",
        )
    }
    assert actual == expected
    assert any(v[0] for v in expected.values()), "some project should have consumption"
    assert any(v[0] is None for v in expected.values()), "a project without a plan has none"


def test_estate_is_the_account_at_a_glance_in_one_row(
    demo_account, demo_warehouse, branch_activity, observed_at
):
    """marts.estate, the headline of the report, the summary and the notebook: the account's
    totals as served, and the thresholds the build applied (dbt_project.yml's vars)."""
    totals = account_totals(demo_account)
    stale = [facts for facts in branch_activity.values() if facts["is_stale"]]
    window = cost_window(observed_at)
    cu_seconds = [
        value
        for (_pid, day, metric), value in consumption_frames(demo_account, observed_at).items()
        if day in window and metric == "compute_unit_seconds"
    ]
    assert stale and cu_seconds and totals["regions_in_use_count"] < totals["region_count"], (
        "the demo has stale branches, usage, empty regions"
    )
    applied = dbt_vars()
    expected = {
        **totals,
        "stale_branch_count": len(stale),
        "stale_logical_size_bytes": sum(facts["logical_size_bytes"] or 0 for facts in stale),
        "cu_hours_last_30_days": pytest.approx(sum(cu_seconds) / 3600),
        **{
            name: applied[name]
            for name in ("stale_after_days", "min_compute_size_cu", "idle_replica_after_days")
        },
    }
    (estate,) = query_dicts(demo_warehouse, f"select {', '.join(expected)} from marts.estate")
    assert estate == expected


def test_estate_counts_the_access_review_s_flags(demo_warehouse):
    """marts.estate's access figures, the report's summary of who can reach the estate: the flags
    of access_review's grants and the reach of project_security's projects (both checked against
    the account served in tests/extract/test_access_marts.py)."""
    grants = query_dicts(demo_warehouse, "select * from marts.access_review")
    projects = query_dicts(demo_warehouse, "select * from marts.project_security")
    expected = {
        "member_without_mfa_count": sum(g["is_flagged_without_mfa"] for g in grants),
        "unused_api_key_count": sum(g["is_flagged_unused_key"] for g in grants),
        "outside_share_count": sum(g["is_flagged_outside_share"] for g in grants),
        "excess_admin_count": sum(g["is_flagged_excess_admin"] for g in grants),
        "reachable_project_count": sum(p["is_reachable_from_anywhere"] for p in projects),
    }
    assert all(expected.values()), "the demo raises every flag, so a row of zeros cannot pass"
    (estate,) = query_dicts(demo_warehouse, f"select {', '.join(expected)} from marts.estate")
    assert estate == expected


def test_daily_consumption_has_one_row_per_project_day_and_metric(demo_account, demo_warehouse, observed_at):
    expected = consumption_frames(demo_account, observed_at)
    rows = query(
        demo_warehouse,
        "select project_id, consumption_date, metric_name, metric_value, metric_unit, is_deleted_project "
        "from marts.daily_consumption",
    )
    assert len(rows) == len(expected)
    assert {(pid, day, metric): value for pid, day, metric, value, _unit, _gone in rows} == expected
    units = {metric: unit for _pid, _day, metric, _value, unit, _gone in rows}
    assert set(units) == set(settings.CONSUMPTION_METRICS) and None not in units.values()
    assert not any(gone for *_rest, gone in rows)


def test_regional_shares_add_up_to_the_account(demo_account, demo_warehouse):
    projects = demo_account.all_projects()
    size = {
        p["id"]: sum(b.get("logical_size") or 0 for b in demo_account.branches(p["id"])) for p in projects
    }
    per_region = defaultdict(list)
    for project in projects:
        per_region[project["region_id"]].append(project)
    rows = query_dicts(
        demo_warehouse,
        "select region_id, share_of_projects, share_of_logical_size, pg_version_mix, "
        "geo_latitude, geo_longitude from marts.regional_footprint",
    )
    regions = {r["region_id"]: r for r in demo_account.regions}
    assert {row["region_id"] for row in rows} == set(regions)
    for row in rows:
        mine = per_region[row["region_id"]]
        assert math.isclose(row["share_of_projects"], len(mine) / len(projects))
        assert math.isclose(
            row["share_of_logical_size"], sum(size[p["id"]] for p in mine) / sum(size.values())
        )
        versions = Counter(p["pg_version"] for p in mine)
        mix = ", ".join(f"pg{v}: {n}" for v, n in sorted(versions.items())) or None
        assert row["pg_version_mix"] == mix
        assert row["geo_latitude"] == float(regions[row["region_id"]]["geo_lat"])
        assert row["geo_longitude"] == float(regions[row["region_id"]]["geo_long"])
    assert math.isclose(sum(r["share_of_projects"] for r in rows), 1.0)
    assert math.isclose(sum(r["share_of_logical_size"] for r in rows), 1.0)


def test_branch_history_of_a_single_run_has_one_created_event_per_branch(demo_account, demo_warehouse):
    branches = {b["id"] for p in demo_account.all_projects() for b in demo_account.branches(p["id"])}
    deleted = {
        b["id"]: b["recovery"]["deleted_at"]
        for p in demo_account.all_projects()
        for b in demo_account.deleted_branches(p["id"])
    }
    assert deleted, "the demo serves restorable deleted branches"
    every = query_dicts(
        demo_warehouse,
        "select branch_id, change_type, recorded_at, valid_from, valid_to, version_number, "
        "is_current_version, is_deleted, changed_columns, created_at from marts.branch_history",
    )
    unseen = [r for r in every if r["branch_id"] not in branches]
    # a deleted branch no run saw alive has one event: its deletion, when Neon says it happened
    assert {r["branch_id"]: r["change_type"] for r in unseen} == dict.fromkeys(deleted, "deleted")
    assert {r["branch_id"]: r["recorded_at"] for r in unseen} == {
        k: marts_timestamp(v) for k, v in deleted.items()
    }
    rows = [r for r in every if r["branch_id"] in branches]
    assert len(rows) == len(branches)
    assert {r["branch_id"] for r in rows} == branches
    load_times = {r["valid_from"] for r in rows}
    assert len(load_times) == 1, "one run, one load"
    for row in rows:
        assert row["change_type"] == "created"
        assert row["recorded_at"] == row["valid_from"]
        assert row["valid_to"] is None and row["is_current_version"] and row["version_number"] == 1
        assert not row["is_deleted"]
        assert row["changed_columns"] is None
        assert row["created_at"] <= row["recorded_at"]


def test_the_stale_threshold_is_a_run_option(demo_warehouse, demo_account, branch_activity, tmp_path):
    """`--stale-after-days N` (or NEON_STALE_AFTER_DAYS) rebuilds the marts with that threshold:
    N is the median idle time of the non-default branches, so both sides of the line are filled."""
    idle = sorted(f["days_since_activity"] for f in branch_activity.values() if f["days_since_activity"])
    days = max(1, int(statistics.median(idle)))
    days += days == STALE_AFTER_DAYS  # a threshold other than the project's default
    warehouse = tmp_path / "neon_api.duckdb"
    shutil.copyfile(demo_warehouse, warehouse)
    defaults = {
        b["id"] for p in demo_account.all_projects() for b in demo_account.branches(p["id"]) if b["default"]
    }

    result = run_cli("transform", "--stale-after-days", str(days), env=cli_env(warehouse), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stale = {bid for (bid,) in query(warehouse, "select branch_id from marts.stale_branches")}
    assert stale == {
        bid for bid, f in branch_activity.items() if bid not in defaults and f["days_since_activity"] >= days
    }
    assert stale and set(branch_activity) - defaults - stale  # both sides of the line are filled
    assert query(warehouse, "select distinct stale_after_days from marts.project_branch_inventory") == [
        (days,)
    ]
    # the report words the threshold the marts applied, not the project's default
    page = html.unescape(report.build(targets.DuckDBTarget(warehouse)))
    in_days = f"{days} day{'' if days == 1 else 's'} or more"
    assert f"none of whose computes was active for {in_days}" in page  # the clean-up list
    assert f"on a stale branch: one nobody used for {in_days}" in page  # the hygiene finding

    refused = run_cli("transform", "--stale-after-days", "0", env=cli_env(warehouse), cwd=tmp_path)
    assert refused.returncode == 2
    assert "stale_after_days must be a whole number of days" in refused.stderr


def test_building_another_warehouse_reuses_dbt_s_parse_of_the_project(
    demo_warehouse, tmp_path, monkeypatch, capfd
):
    """dbt parses the project again whenever the profile's connection changes; each warehouse (a
    scheduled run's, the demo's, a test's) gets its own working copy, so the build points dbt at
    it by a path that names the file only, and a build of another warehouse reuses the parse.
    The first warehouse's is a `dbt parse` (all the second needs of it), the second's a build."""
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path / "dbt-target"))
    monkeypatch.delenv("DBT_PARTIAL_PARSE_FILE_PATH", raising=False)  # the suite's shared parse (conftest)
    first, second = (tmp_path / folder / demo_warehouse.name for folder in ("first", "second"))
    for warehouse in (first, second):
        warehouse.parent.mkdir()
        shutil.copyfile(demo_warehouse, warehouse)
    run.dbt(["parse"], targets.DuckDBBuild(first))
    parsed = capfd.readouterr().out
    elt(second, None, do_extract=False, show_progress=False)
    built = capfd.readouterr().out
    assert "Unable to do partial parsing because saved manifest not found" in parsed
    assert "Unable to do partial parsing" not in built, built
    assert query(second, "select count(*) from marts.projects")[0][0] > 0


def test_a_build_drops_what_an_earlier_version_built_under_a_retired_name(demo_warehouse, tmp_path):
    """The staging models of the daily counter readings were named `*_snapshots`, beside Neon's
    own snapshots (`stg_neon__backup_snapshots`). A warehouse an earlier version built still holds
    those views; the next build drops them, and nothing else (an analyst's own table stays)."""
    warehouse = tmp_path / "neon_api.duckdb"
    shutil.copyfile(demo_warehouse, warehouse)
    retired = ("staging", "stg_neon__project_snapshots")
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(
            f"create view {'.'.join(retired)} as select * from staging.stg_neon__project_latest_readings"
        )
        connection.execute("create table staging.analysts_own as select 1 as x")
    before = set(relations(warehouse))

    with targets.DuckDBTarget(warehouse).build() as build:
        run.dbt(["run", "--select", "stg_neon__project_readings"], build)
    assert set(relations(warehouse)) == before - {retired}


def relations(warehouse) -> list[tuple[str, str]]:
    return query(warehouse, "select table_schema, table_name from information_schema.tables")
