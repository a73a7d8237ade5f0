"""The simulator's pagination as Neon's: the projects' cursor that never ends, branches' `next`,
operations' cursor, limits, sorting and search.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

import pytest
from simulator_helpers import (
    assert_error,
    get,
    project_with_most,
    session,
    walk_branches,
    walk_cursor,
    walk_projects,
)


def test_projects_pagination_always_has_a_cursor(realistic_sim, realistic):
    org = max(realistic.organizations, key=lambda o: len(realistic.all_projects(o["id"])))["id"]
    expected = [p["id"] for p in realistic.all_projects(org)]
    http = session(realistic_sim.api_key)
    projects, bodies = walk_projects(http, realistic_sim.base_url, org_id=org, limit=7)
    ids = [p["id"] for p in projects]
    assert ids == expected and len(set(ids)) == len(ids)
    sizes = [len(b["projects"]) for b in bodies]
    assert sizes[-1] == 0 and all(s == 7 for s in sizes[:-2]) and 0 < sizes[-2] <= 7
    assert [b["projects"][0]["org_id"] for b in bodies[:-1]] == [org] * (len(bodies) - 1)
    # The empty page's cursor is stable: asking again gives another empty page.
    again = http.get(
        f"{realistic_sim.base_url}/projects",
        params={"org_id": org, "cursor": bodies[-1]["pagination"]["cursor"]},
    )
    assert again.json()["projects"] == [] and again.json()["pagination"]["cursor"]
    # The maps are keyed by the listed projects.
    for body in bodies:
        assert set(body["applications"]) <= {p["id"] for p in body["projects"]}
        assert body["integrations"] == body["applications"]


def test_projects_default_limit_and_limit_bounds(realistic_sim, realistic):
    org = max(realistic.organizations, key=lambda o: len(realistic.all_projects(o["id"])))["id"]
    assert len(realistic.all_projects(org)) > 10
    assert len(get(realistic_sim, "/projects", org_id=org).json()["projects"]) == 10
    assert len(get(realistic_sim, "/projects", org_id=org, limit=1).json()["projects"]) == 1
    assert len(get(realistic_sim, "/projects", org_id=org, limit=400).json()["projects"]) == len(
        realistic.all_projects(org)
    )
    for bad in ("0", "401", "-1", "ten", ""):
        assert_error(get(realistic_sim, "/projects", org_id=org, limit=bad), 400)
    for params in (
        {"timeout": 50},
        {"recoverable": "maybe"},
        {"org_id": "Not_An_Id"},
        {"cursor": "garbage!"},
    ):
        assert_error(get(realistic_sim, "/projects", **{"org_id": org, **params}), 400)


def test_projects_search(demo_sim, demo):
    org = demo.organizations[0]["id"]
    target = demo.all_projects(org)[-1]
    found = get(demo_sim, "/projects", org_id=org, search=target["name"][:6]).json()["projects"]
    assert target["id"] in [p["id"] for p in found]
    assert all(
        target["name"][:6].lower() in p["name"].lower() or target["name"][:6] in p["id"] for p in found
    )
    assert get(demo_sim, "/projects", org_id=org, search=target["id"]).json()["projects"] == [target]


def test_branches_pagination_next_only_while_more_remain(realistic_sim, realistic):
    project = project_with_most(realistic, realistic.branches)
    pid = project["id"]
    expected = realistic.branches(pid)
    assert len(expected) >= 5
    http = session(realistic_sim.api_key)
    branches, bodies = walk_branches(http, realistic_sim.base_url, pid, limit=2)
    assert branches == expected
    assert all("next" in b["pagination"] for b in bodies[:-1]) and "next" not in bodies[-1]["pagination"]
    assert all(
        b["pagination"]["sort_by"] == "updated_at" and b["pagination"]["sort_order"] == "desc" for b in bodies
    )
    assert len(bodies) == -(-len(expected) // 2)
    # Without a limit, everything comes in one page.
    whole = get(realistic_sim, f"/projects/{pid}/branches").json()
    assert whole["branches"] == expected and "next" not in whole["pagination"]
    annotated = realistic.annotations(pid)
    assert whole["annotations"] == {b["id"]: annotated[b["id"]] for b in expected if b["id"] in annotated}


@pytest.mark.parametrize(
    ("sort_by", "sort_order"),
    [("name", "asc"), ("created_at", "asc"), ("updated_at", "desc"), ("name", "desc")],
)
def test_branches_sorting(realistic_sim, realistic, sort_by, sort_order):
    pid = project_with_most(realistic, realistic.branches)["id"]
    expected = sorted(
        realistic.branches(pid), key=lambda b: (b[sort_by], b["id"]), reverse=sort_order == "desc"
    )
    branches, bodies = walk_branches(
        session(realistic_sim.api_key),
        realistic_sim.base_url,
        pid,
        limit=3,
        sort_by=sort_by,
        sort_order=sort_order,
    )
    assert branches == expected
    assert (
        bodies[0]["pagination"]["sort_by"] == sort_by and bodies[0]["pagination"]["sort_order"] == sort_order
    )


def test_branches_bad_parameters(realistic_sim, realistic):
    pid = project_with_most(realistic, realistic.branches)["id"]
    first = get(realistic_sim, f"/projects/{pid}/branches", limit=1).json()
    for params in (
        {"limit": 0},
        {"limit": 10001},
        {"sort_by": "size"},
        {"sort_order": "up"},
        {"cursor": "x"},
        {"cursor": first["pagination"]["next"], "sort_by": "name"},
        {"include_deleted": "yes"},
    ):
        assert_error(get(realistic_sim, f"/projects/{pid}/branches", **params), 400)
    assert get(realistic_sim, f"/projects/{pid}/branches", limit=10000).status_code == 200
    name = realistic.branches(pid)[-1]["name"]
    found = get(realistic_sim, f"/projects/{pid}/branches", search=name).json()["branches"]
    assert name in [b["name"] for b in found]


def test_operations_pagination(realistic_sim, realistic):
    pid = project_with_most(realistic, realistic.operations)["id"]
    expected = realistic.operations(pid)
    url = f"{realistic_sim.base_url}/projects/{pid}/operations"
    ops, bodies = walk_cursor(session(realistic_sim.api_key), url, "operations", limit=4)
    assert ops == expected
    assert bodies[-1]["operations"] == [] and len(bodies) == -(-len(expected) // 4) + 1
    assert get(realistic_sim, f"/projects/{pid}/operations").json()["operations"] == expected
    for bad in (0, 1001):
        assert_error(get(realistic_sim, f"/projects/{pid}/operations", limit=bad), 400)
    single = get(realistic_sim, f"/projects/{pid}/operations/{expected[0]['id']}").json()
    assert single == {"operation": expected[0]}
