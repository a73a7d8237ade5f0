"""The simulator's consumption history: pages that match the account, granularities that add up,
filters by metric and project, and Neon's refusals.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

from datetime import timedelta

from neon_simulator.account import CONSUMPTION_METRICS
from neon_simulator.errors import CONSUMPTION_PLAN_REQUIRED
from simulator_helpers import (
    assert_error,
    consumption_params,
    get,
    plan_org,
    session,
    walk_cursor,
)


def test_consumption_pages_match_the_account(realistic_sim, realistic):
    org = plan_org(realistic)
    days = 10
    url = f"{realistic_sim.base_url}/consumption_history/v2/projects"
    items, bodies = walk_cursor(
        session(realistic_sim.api_key), url, "projects", **consumption_params(realistic, org, days, limit=7)
    )
    assert [i["project_id"] for i in items] == [p["id"] for p in realistic.all_projects(org)]
    assert all(len(b["projects"]) == 7 for b in bodies[:-2]) and bodies[-1]["projects"] == []
    first_day = (realistic.now.replace(hour=0) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    today = realistic.now.replace(hour=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    for item in items:
        served = [
            (frame["timeframe_start"], {m["metric_name"]: m["value"] for m in frame["metrics"]})
            for period in item["periods"]
            for frame in period["consumption"]
        ]
        expected = [
            (day["timeframe_start"], day["metrics"])
            for day in realistic.consumption(item["project_id"])
            if first_day <= day["timeframe_start"] < today
        ]
        assert served == expected
        for period in item["periods"]:
            assert all(f["timeframe_start"] >= period["period_start"] for f in period["consumption"])


def test_consumption_granularities_add_up(realistic):
    pid = realistic.all_projects(plan_org(realistic))[0]["id"]
    hourly, daily, monthly = (realistic.consumption(pid, g) for g in ("hourly", "daily", "monthly"))
    assert hourly and daily and monthly
    for metric in CONSUMPTION_METRICS:
        total = sum(f["metrics"][metric] for f in hourly)
        assert total == sum(f["metrics"][metric] for f in daily) == sum(f["metrics"][metric] for f in monthly)
    assert daily[-1]["timeframe_start"] == realistic.now.replace(hour=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert hourly[-1]["timeframe_end"] == realistic.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(daily) <= realistic.spec.consumption_days + 1


def test_consumption_filters_metrics_and_projects(realistic_sim, realistic):
    org = plan_org(realistic)
    wanted = [p["id"] for p in realistic.all_projects(org)[2:5]]
    body = get(
        realistic_sim,
        "/consumption_history/v2/projects",
        **consumption_params(
            realistic,
            org,
            3,
            metrics="extra_branches_month,compute_unit_seconds",
            project_ids=",".join(wanted),
        ),
    ).json()
    assert [p["project_id"] for p in body["projects"]] == wanted
    for project in body["projects"]:
        for period in project["periods"]:
            for frame in period["consumption"]:
                assert [m["metric_name"] for m in frame["metrics"]] == [
                    "extra_branches_month",
                    "compute_unit_seconds",
                ]
    repeated = get(
        realistic_sim,
        "/consumption_history/v2/projects",
        **consumption_params(realistic, org, 3, project_ids=wanted),
    )
    assert [p["project_id"] for p in repeated.json()["projects"]] == wanted


def test_consumption_errors(realistic_sim, realistic):
    org = plan_org(realistic)
    path = "/consumption_history/v2/projects"
    for missing in ("org_id", "from", "to", "granularity", "metrics"):
        params = consumption_params(realistic, org, 3)
        del params[missing]
        assert_error(get(realistic_sim, path, **params), 400)
    assert_error(
        get(realistic_sim, path, **consumption_params(realistic, org, 3, metrics="cpu_seconds")), 400
    )
    assert_error(get(realistic_sim, path, **consumption_params(realistic, org, 3, limit=101)), 400)
    free = next(o["id"] for o in realistic.organizations if o["id"] not in realistic.plan_org_ids())
    assert_error(
        get(realistic_sim, path, **consumption_params(realistic, free, 3)), 403, CONSUMPTION_PLAN_REQUIRED
    )
    assert_error(get(realistic_sim, path, **consumption_params(realistic, "org-unknown-12345678", 3)), 404)
    assert get(realistic_sim, path, **consumption_params(realistic, org, 60)).status_code == 200
    assert_error(get(realistic_sim, path, **consumption_params(realistic, org, 61)), 406)
    assert_error(get(realistic_sim, path, **consumption_params(realistic, org, 8, "hourly")), 406)
    backwards = consumption_params(realistic, org, 3)
    backwards["from"], backwards["to"] = backwards["to"], backwards["from"]
    assert_error(get(realistic_sim, path, **backwards), 406)
