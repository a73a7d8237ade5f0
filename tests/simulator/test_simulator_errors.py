"""The simulator's authentication, authorisation and errors: bad keys, unknown paths and methods,
the org_id a personal key must give on an organization's account, and an organization's key.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

import requests
from neon_simulator import Simulator
from neon_simulator.errors import ORG_ID_REQUIRED, ORG_KEY_FORBIDDEN
from simulator_helpers import (
    assert_error,
    get,
    session,
    walk_projects,
)


def test_authentication(demo_sim):
    url = demo_sim.base_url + "/regions"
    assert_error(requests.get(url), 401)
    assert_error(requests.get(url, headers={"Authorization": "Bearer napi_wrong"}), 401)
    assert_error(requests.get(url, headers={"Authorization": f"Basic {demo_sim.api_key}"}), 401)
    assert requests.get(url, headers={"Authorization": f"Bearer {demo_sim.api_key}"}).status_code == 200


def test_not_found_and_method_not_allowed(demo_sim, demo):
    projects = demo.all_projects()
    pid, other = projects[0]["id"], projects[1]["id"]
    foreign_branch = demo.branches(other)[0]["id"]
    for path in (
        "/projects/no-such-project-1",
        "/projects/no-such-project-1/branches",
        "/projects/no-such-project-1/endpoints",
        f"/projects/{pid}/branches/br-no-such-branch-1",
        f"/projects/{pid}/branches/{foreign_branch}/databases",
        f"/projects/{pid}/branches/br-no-such-branch-1/roles",
        f"/projects/{pid}/operations/00000000-0000-4000-8000-000000000000",
        "/projects/clusters",
    ):
        assert_error(get(demo_sim, path), 404)
    for path in ("/no/such/route", f"/projects/{pid}/databases", f"/projects/{pid}/clusters"):
        response = session(demo_sim.api_key).get(demo_sim.base_url + path)  # no route of the spec to check
        assert response.status_code == 404 and response.json()["message"]
    response = session(demo_sim.api_key).post(demo_sim.base_url + "/projects", json={"project": {}})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    assert set(response.json()) == {"code", "message", "request_id"}
    echoed = session(demo_sim.api_key).get(
        demo_sim.base_url + "/projects/nope-1", headers={"X-Request-ID": "trace-me"}
    )
    assert echoed.json()["request_id"] == "trace-me"


def test_personal_key_needs_org_id_on_an_org_account(demo_sim, demo):
    assert_error(get(demo_sim, "/projects"), 400, ORG_ID_REQUIRED)
    assert_error(get(demo_sim, "/projects", org_id="org-not-mine-12345678"), 404)
    for org in demo.organizations:
        ids = [p["id"] for p in get(demo_sim, "/projects", org_id=org["id"], limit=400).json()["projects"]]
        assert ids == [p["id"] for p in demo.all_projects(org["id"])]


def test_org_api_key(demo):
    org, other = (o["id"] for o in demo.organizations[:2])
    key = demo.org_api_key(org)
    keys = {demo.personal_api_key: {"kind": "personal"}, key: {"kind": "org", "org_id": org}}
    with Simulator(demo, api_keys=keys) as sim:
        assert sim.api_key == demo.personal_api_key
        assert_error(get(sim, "/regions", key=key), 403, ORG_KEY_FORBIDDEN)
        assert_error(get(sim, "/users/me/organizations", key=key), 403, ORG_KEY_FORBIDDEN)
        assert_error(get(sim, "/users/me", key=key), 403, ORG_KEY_FORBIDDEN)
        projects, _ = walk_projects(session(key), sim.base_url, limit=4)
        assert [p["id"] for p in projects] == [p["id"] for p in demo.all_projects(org)]
        assert get(sim, "/projects", key=key, org_id=org).json()["projects"]
        assert_error(get(sim, "/projects", key=key, org_id=other), 404)
        foreign = demo.all_projects(other)[0]["id"]
        assert_error(get(sim, f"/projects/{foreign}/branches", key=key), 404)
        own = demo.all_projects(org)[0]["id"]
        assert get(sim, f"/projects/{own}/branches", key=key).json()["branches"] == demo.branches(own)
