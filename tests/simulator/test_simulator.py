"""The Neon API simulator: the synthetic account, and the HTTP API checked against Neon's spec.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import requests
from neon_simulator import PRESETS, VOLATILE_FIELDS, Account, Simulator
from neon_simulator.account import CONSUMPTION_METRICS, REGIONS
from neon_simulator.errors import CONSUMPTION_PLAN_REQUIRED, ORG_ID_REQUIRED, ORG_KEY_FORBIDDEN
from neon_simulator.live import SPENDING_LIMIT_PLANS
from neon_simulator.params import _param
from neon_simulator.reference import BRANCH_CONSUMPTION_METRICS
from neon_simulator.routing import ROUTE_TEMPLATES, match_route
from simulator_helpers import demo as demo
from simulator_helpers import demo_sim as demo_sim
from simulator_helpers import (
    get,
    schema,
    session,
    spec,
    spec_of,
    validate,
    walk_branches,
    walk_cursor,
    walk_projects,
)

ID = re.compile(r"^[a-z0-9-]{1,60}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def realistic() -> Account:
    return Account.generate(spec_of("realistic"))


@pytest.fixture(scope="module")
def realistic_sim(realistic):
    with Simulator(realistic) as sim:
        yield sim


@pytest.fixture
def fresh_sim():
    """A simulator over its own demo account, for tests that mutate the account."""
    with Simulator(Account.generate(spec_of("demo"))) as sim:
        yield sim


def assert_error(response: requests.Response, status: int, message: str | None = None) -> dict:
    """A GeneralError answer with the given status (and exact message, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    validate(response, request_valid=False)
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    if message is not None:
        assert body["message"] == message
    return body


def project_with_most(account: Account, what) -> dict:
    return max(account.all_projects(), key=lambda p: (len(what(p["id"])), p["id"]))


def plan_org(account: Account) -> str:
    return min(account.plan_org_ids())


# --------------------------------------------------------------------------------------------------
# Every route against the spec
# --------------------------------------------------------------------------------------------------


def every_get(account: Account, projects: list[dict]) -> list[tuple[str, dict]]:
    """One request per route and object of ``projects``, with realistic query parameters."""
    requests_ = [
        ("/users/me", {}),
        ("/users/me/organizations", {}),
        ("/regions", {}),
        ("/projects/shared", {}),
    ]
    orgs = [o["id"] for o in account.organizations] or [None]
    requests_ += [("/projects", {"limit": 400, **({"org_id": org} if org else {})}) for org in orgs]
    for project in projects:
        pid = project["id"]
        requests_ += [
            (f"/projects/{pid}", {}),
            (f"/projects/{pid}/branches", {}),
            (f"/projects/{pid}/branches", {"limit": 1, "sort_by": "name", "sort_order": "asc"}),
            (f"/projects/{pid}/branches", {"include_deleted": "true"}),
            (f"/projects/{pid}/endpoints", {}),
            (f"/projects/{pid}/operations", {"limit": 3}),
            (f"/projects/{pid}/snapshots", {}),
        ]
        requests_ += [(f"/projects/{pid}/operations/{op['id']}", {}) for op in account.operations(pid)[:1]]
        for branch in account.branches(pid):
            prefix = f"/projects/{pid}/branches/{branch['id']}"
            requests_ += [
                (prefix, {}),
                (f"{prefix}/endpoints", {}),
                (f"{prefix}/databases", {}),
                (f"{prefix}/roles", {}),
                (f"{prefix}/backup_schedule", {}),
            ]
    # who can reach the estate: what the personal key's user may read (the 403s: test_simulator_access)
    for org in orgs if orgs != [None] else []:
        requests_.append((f"/organizations/{org}/members", {"limit": 500}))
        if account._org_by_id[org]["plan"] in SPENDING_LIMIT_PLANS:  # 403 elsewhere
            requests_.append((f"/organizations/{org}/billing/spending_limit", {}))
        if account.org_role(org) == "admin":
            requests_.append((f"/organizations/{org}/api_keys", {}))
            if org in account.plan_org_ids():
                requests_.append((f"/organizations/{org}/vpc/vpc_endpoints", {}))
    for project in projects:
        requests_.append((f"/projects/{project['id']}/permissions", {}))
        if project.get("org_id"):  # the live spec's per-project permissions (personal: 404)
            requests_.append((f"/projects/{project['id']}/members", {"limit": 500}))
        if project.get("org_id") in account.plan_org_ids():
            requests_.append((f"/projects/{project['id']}/vpc_endpoints", {}))
    for org in account.plan_org_ids():
        for granularity, back in (
            ("hourly", timedelta(hours=30)),
            ("daily", timedelta(days=20)),
            ("monthly", timedelta(days=200)),
        ):
            requests_.append(
                (
                    "/consumption_history/v2/projects",
                    {
                        "org_id": org,
                        "from": (account.now - back).isoformat(),
                        "to": account.now.isoformat(),
                        "granularity": granularity,
                        "metrics": list(CONSUMPTION_METRICS),
                    },
                )
            )
            # branch consumption: the projects of that organization, a hundred at most
            ids = [p["id"] for p in projects if p.get("org_id") == org][:100]
            if ids:
                requests_.append(
                    (
                        "/consumption_history/v2/branches",
                        {
                            "org_id": org,
                            "project_ids": ids,
                            "from": (account.now - back).isoformat(),
                            "to": account.now.isoformat(),
                            "granularity": granularity,
                            "metrics": list(BRANCH_CONSUMPTION_METRICS),
                        },
                    )
                )
    return requests_


@pytest.mark.parametrize(
    ("preset", "changes", "sample"),
    [
        ("tiny", {}, None),
        ("demo", {"serve_secrets": True}, None),
        ("demo", {"orgs": 0, "seed": 7}, 5),  # a personal account: no org_id anywhere
        ("realistic", {"seed": 3}, 4),  # a sample of projects, to stay fast
    ],
    ids=["tiny", "demo-secrets", "personal", "realistic-sample"],
)
def test_every_route_validates_against_the_spec(preset, changes, sample):
    """Every response is validated; each request shape (route and parameter names) once."""
    account = Account.generate(spec_of(preset, **changes))
    projects = account.all_projects()[:sample]
    shapes = set()
    with Simulator(account) as sim:
        http = session(sim.api_key)
        for path, params in every_get(account, projects):
            response = http.get(sim.base_url + path, params=params)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["Content-Type"] == "application/json"
            shape = (match_route(path)[0], tuple(sorted(params)))
            validate(response, request_valid=shape not in shapes)
            shapes.add(shape)


def test_the_validation_walk_covers_every_route(demo):
    templates = {match_route(path)[0] for path, _ in every_get(demo, demo.all_projects())}
    assert templates == set(ROUTE_TEMPLATES)


def spec_parameters(template: str) -> list[dict]:
    """The parameters Neon's spec declares for ``GET template``, ``$ref``s followed."""
    path_item = spec()["paths"][template]
    found = [*path_item.get("parameters", []), *path_item["get"].get("parameters", [])]
    return [
        spec()["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in found
    ]


def allowed_and_refused(rules: dict) -> tuple[list, list]:
    """Values a query parameter's schema allows and values it refuses, read off the schema."""
    if "$ref" in rules:
        rules = spec()["components"]["schemas"][rules["$ref"].rsplit("/", 1)[-1]]
    if rules["type"] == "integer":
        low, high = rules.get("minimum"), rules.get("maximum")
        refused = ([low - 1] if low is not None else []) + ([high + 1] if high is not None else [])
        return [v for v in (low, high) if v is not None], [*refused, "ten"]
    if rules["type"] == "boolean":
        return ["true", "false"], ["maybe"]
    if "enum" in rules:
        return rules["enum"], ["none-of-these"]
    if rules.get("format") == "date-time":
        return [], ["yesterday"]
    return [], ["Not_An_Id!"] if "pattern" in rules or "pattern" in rules.get("items", {}) else []


def test_every_parameter_rule_the_spec_declares_is_enforced(demo_sim, demo):
    """Each query parameter's bounds, enum, type, pattern and ``required``, read off the spec here:
    values outside them are a 400, values at their edges are served."""
    pid, org = demo.all_projects()[0]["id"], plan_org(demo)
    valid = {
        "/regions": {},
        "/projects": {"org_id": org},
        "/projects/shared": {},
        "/projects/{project_id}/branches": {},
        "/projects/{project_id}/operations": {},
        "/consumption_history/v2/projects": consumption_params(demo, org, 3),
        "/consumption_history/v2/branches": {
            **consumption_params(demo, org, 3, metrics=list(BRANCH_CONSUMPTION_METRICS)),
            "project_ids": demo.all_projects(org)[0]["id"],
        },
        "/organizations/{org_id}/members": {},
        "/projects/{project_id}/members": {},  # demo's first project belongs to an organization
    }
    with_query = {t for t in ROUTE_TEMPLATES if any(p["in"] == "query" for p in spec_parameters(t))}
    assert with_query == set(valid)
    for template, base in valid.items():
        path = template.replace("{project_id}", pid).replace("{org_id}", org)
        for param in (p for p in spec_parameters(template) if p["in"] == "query"):
            name = param["name"]
            allowed, refused = allowed_and_refused(param["schema"])
            for value in allowed:
                response = get(demo_sim, path, **{**base, name: value})
                assert response.status_code == 200, (template, name, value, response.text)
            for value in refused:
                assert_error(get(demo_sim, path, **{**base, name: value}), 400)
            if param.get("required"):
                assert_error(get(demo_sim, path, **{k: v for k, v in base.items() if k != name}), 400)


def test_a_parameter_rule_the_simulator_cannot_check_stops_it():
    """A constraint a newer spec might add is never silently left unchecked."""
    for rules in (
        {"type": "string", "maxLength": 8},
        {"type": "number"},
        {"type": "array", "uniqueItems": True},
    ):
        with pytest.raises(ValueError, match="not checked here"):
            _param("/projects", {"name": "q", "in": "query", "schema": rules})


DECLARED = {
    "organizations": "Organization",
    "regions": "RegionResponse",
    "projects": "ProjectListItem",
    "project": "Project",
    "branches": "Branch",
    "endpoints": "Endpoint",
    "databases": "Database",
    "roles": "Role",
    "operations": "Operation",
}


def declared_fields(schema_name: str) -> set[str]:
    return set(schema(schema_name)["properties"])


def test_records_carry_only_fields_the_spec_declares(realistic):
    """The spec's schemas allow extra keys, so check the exact shapes here."""
    records: dict[str, list[dict]] = {
        "organizations": realistic.organizations,
        "regions": realistic.regions,
        "projects": realistic.all_projects(),
    }
    for project in records["projects"][:30]:
        pid = project["id"]
        records.setdefault("project", []).append(realistic.project(pid))
        records.setdefault("endpoints", []).extend(realistic.endpoints(pid))
        records.setdefault("operations", []).extend(realistic.operations(pid))
        for branch in realistic.branches(pid):
            records.setdefault("branches", []).append(branch)
            records.setdefault("databases", []).extend(realistic.databases(pid, branch["id"]))
            records.setdefault("roles", []).extend(realistic.roles(pid, branch["id"]))
    for kind, items in records.items():
        allowed = declared_fields(DECLARED[kind])
        assert items, kind
        for item in items:
            assert set(item) <= allowed, (kind, set(item) - allowed)
            assert None not in item.values(), (kind, item)  # absent means omitted, never null


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (
            "projects",
            [
                "compute_last_active_at",
                "synthetic_storage_size",
                "history_retention_seconds",
                "settings",
                "default_endpoint_settings",
                "maintenance_starts_at",
            ],
        ),
        (
            "branches",
            [
                "parent_id",
                "parent_lsn",
                "parent_timestamp",
                "logical_size",
                "expires_at",
                "created_by",
                "init_source",
                "pending_state",
                "last_reset_at",
            ],
        ),
        ("endpoints", ["last_active", "started_at", "suspended_at", "name", "compute_release_version"]),
        ("roles", ["protected", "authentication_method"]),
        ("operations", ["endpoint_id", "error", "retry_at"]),
    ],
)
def test_optional_fields_are_sometimes_present_and_sometimes_absent(realistic, kind, fields):
    projects = realistic.all_projects()
    if kind == "projects":
        items = projects
    elif kind == "roles":
        items = [
            r
            for p in projects
            for b in realistic.branches(p["id"])
            for r in realistic.roles(p["id"], b["id"])
        ]
    else:
        items = [x for p in projects for x in getattr(realistic, kind)(p["id"])]
    for name in fields:
        present = sum(name in item for item in items)
        assert 0 < present < len(items), (kind, name, present, len(items))


# --------------------------------------------------------------------------------------------------
# The account's data
# --------------------------------------------------------------------------------------------------


def test_regions_are_real_and_one_has_no_projects(demo_sim, demo):
    response = get(demo_sim, "/regions")
    listed = [r["region_id"] for r in response.json()["regions"]]
    assert listed == [r[0] for r in REGIONS]
    assert {"aws-us-east-1", "aws-us-east-2", "aws-eu-central-1", "azure-eastus2", "azure-gwc"} <= set(listed)
    assert sum(r["default"] for r in response.json()["regions"]) == 1
    used = {p["region_id"] for p in demo.all_projects()}
    assert used <= set(listed)
    assert set(listed) - used, "at least one listed region must have no projects"
    for region in response.json()["regions"]:
        assert -90 <= float(region["geo_lat"]) <= 90 and -180 <= float(region["geo_long"]) <= 180


def test_branch_trees_and_computes(realistic):
    depths = Counter()
    for project in realistic.all_projects():
        pid = project["id"]
        branches = {b["id"]: b for b in realistic.branches(pid)}
        defaults = [b for b in branches.values() if b["default"]]
        assert len(defaults) == 1 and "parent_id" not in defaults[0]
        for branch in branches.values():
            if "parent_id" in branch:
                parent = branches[branch["parent_id"]]
                assert parent["created_at"] <= branch["created_at"]
                assert parent["project_id"] == pid
        depth = realistic.branch_depths(pid)
        depths.update(depth.values())
        assert max(depth.values()) <= realistic.spec.max_branch_depth
        read_write = Counter(e["branch_id"] for e in realistic.endpoints(pid) if e["type"] == "read_write")
        assert max(read_write.values(), default=0) <= 1
        for endpoint in realistic.endpoints(pid):
            assert endpoint["branch_id"] in branches
            assert 0.25 <= endpoint["autoscaling_limit_min_cu"] <= endpoint["autoscaling_limit_max_cu"] <= 8
            assert endpoint["current_state"] in ("active", "idle")
            if endpoint["current_state"] == "active":
                assert "last_active" in endpoint
    assert max(depths) >= 3, "trees deeper than two levels below the root must exist"
    endpoints = [e for p in realistic.all_projects() for e in realistic.endpoints(p["id"])]
    assert {"read_only", "read_write"} <= {e["type"] for e in endpoints}
    assert {"active", "idle"} <= {e["current_state"] for e in endpoints}
    branches = [b for p in realistic.all_projects() for b in realistic.branches(p["id"])]
    assert {"ready", "archived", "init"} <= {b["current_state"] for b in branches}
    assert any(b["protected"] for b in branches) and not all(b["protected"] for b in branches)


def test_ids_timestamps_and_versions_look_like_neon(realistic):
    ids = [o["id"] for o in realistic.organizations]
    databases = []
    for project in realistic.all_projects():
        pid = project["id"]
        ids.append(pid)
        assert TIMESTAMP.match(project["created_at"]) and TIMESTAMP.match(project["updated_at"])
        assert project["created_at"] <= project["updated_at"]
        for branch in realistic.branches(pid):
            ids.append(branch["id"])
            assert branch["id"].startswith("br-")
            assert TIMESTAMP.match(branch["created_at"])
            roles = {r["name"] for r in realistic.roles(pid, branch["id"])}
            for database in realistic.databases(pid, branch["id"]):
                assert database["owner_name"] in roles
                databases.append(database["id"])
        for endpoint in realistic.endpoints(pid):
            ids.append(endpoint["id"])
            assert endpoint["id"].startswith("ep-") and endpoint["host"].startswith(endpoint["id"] + ".")
    assert all(ID.match(i) for i in ids)
    assert len(ids) == len(set(ids)), "ids must be unique"
    assert len(databases) == len(set(databases)), "database ids are unique per account"
    assert {14, 15, 16, 17, 18} == {p["pg_version"] for p in realistic.all_projects()}
    assert {o["id"] for o in realistic.organizations} == {p["org_id"] for p in realistic.all_projects()}
    assert all(p["org_name"] for p in realistic.all_projects())


def test_operations_are_newest_first_with_spec_enums(realistic):
    actions, statuses = set(schema("OperationAction")["enum"]), set(schema("OperationStatus")["enum"])
    horizon = (realistic.now - timedelta(days=91)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for project in realistic.all_projects():
        ops = realistic.operations(project["id"])
        keys = [(o["created_at"], o["id"]) for o in ops]
        assert keys == sorted(keys, reverse=True)
        for op in ops:
            assert op["action"] in actions and op["status"] in statuses
            assert horizon <= op["created_at"] <= op["updated_at"]
            assert op["created_at"] >= project["created_at"]


def test_personal_account_has_no_orgs():
    account = Account.generate(spec_of("demo", orgs=0))
    assert account.organizations == []
    assert all("org_id" not in p and "org_name" not in p for p in account.all_projects())
    with Simulator(account) as sim:
        projects, _ = walk_projects(session(sim.api_key), sim.base_url, limit=5)
        assert [p["id"] for p in projects] == [p["id"] for p in account.all_projects()]
        assert get(sim, "/users/me/organizations").json() == {"organizations": []}


def test_default_clock_is_the_current_hour():
    account = Account.generate(dataclasses.replace(PRESETS["tiny"], now=None))
    now = datetime.now(UTC)
    assert account.now.minute == account.now.second == 0
    assert timedelta(0) <= now - account.now < timedelta(hours=1, minutes=1)


# --------------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Consumption
# --------------------------------------------------------------------------------------------------


def consumption_params(account: Account, org: str, days: int, granularity: str = "daily", **extra) -> dict:
    today = account.now.replace(hour=0)
    return {
        "org_id": org,
        "from": (today - timedelta(days=days)).isoformat(),
        "to": today.isoformat(),
        "granularity": granularity,
        "metrics": list(CONSUMPTION_METRICS),
        **extra,
    }


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


# --------------------------------------------------------------------------------------------------
# Authentication, authorisation and errors
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------


def snapshot_http(account: Account) -> list[bytes]:
    with Simulator(account) as sim:
        http = session(sim.api_key)
        return [
            http.get(sim.base_url + path, params=params).content
            for path, params in every_get(account, account.all_projects()[:4])
        ]


def test_same_seed_same_responses_different_seed_different():
    first = snapshot_http(Account.generate(spec_of("demo")))
    assert first == snapshot_http(Account.generate(spec_of("demo")))
    other = snapshot_http(Account.generate(spec_of("demo", seed=43)))
    assert len(other) > 10 and first != other
    assert (
        Account.generate(spec_of("demo")).personal_api_key
        != Account.generate(spec_of("demo", seed=43)).personal_api_key
    )


def test_branch_count_is_exact():
    for name in ("tiny", "demo", "realistic"):
        account = Account.generate(spec_of(name))
        counts = account.counts()
        assert counts["projects"] == account.spec.projects
        assert counts["branches"] == round(account.spec.projects * account.spec.branches_per_project)


# --------------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------------


def test_delete_project(fresh_sim):
    account = fresh_sim.account
    org = account.organizations[0]["id"]
    victim = account.all_projects(org)[0]["id"]
    account.delete_project(victim)
    assert_error(get(fresh_sim, f"/projects/{victim}"), 404)
    assert_error(get(fresh_sim, f"/projects/{victim}/branches"), 404)
    ids = [p["id"] for p in get(fresh_sim, "/projects", org_id=org, limit=400).json()["projects"]]
    assert victim not in ids and ids == [p["id"] for p in account.all_projects(org)]


def test_create_rename_and_delete_branches(fresh_sim):
    account = fresh_sim.account
    pid = account.all_projects()[0]["id"]
    before_ops = len(account.operations(pid))
    default = next(b for b in account.branches(pid) if b["default"])
    child = account.create_branch(pid, name="feature/simulated")
    grandchild = account.create_branch(pid, parent_id=child["id"])
    assert child["parent_id"] == default["id"] and grandchild["parent_id"] == child["id"]
    assert child["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [d["name"] for d in account.databases(pid, child["id"])] == [
        d["name"] for d in account.databases(pid, default["id"])
    ]
    served = get(fresh_sim, f"/projects/{pid}/branches").json()["branches"]
    assert {child["id"], grandchild["id"]} <= {b["id"] for b in served}
    # Neon's operations for a branch: create_branch, and start_compute for each compute it came with
    new_ops = account.operations(pid)[: len(account.operations(pid)) - before_ops]
    computes = [e for e in account.endpoints(pid) if e["branch_id"] in (child["id"], grandchild["id"])]
    assert Counter(op["action"] for op in new_ops) == Counter(
        {"create_branch": 2} | ({"start_compute": len(computes)} if computes else {})
    )
    assert {op["branch_id"] for op in new_ops} == {child["id"], grandchild["id"]}
    with pytest.raises(ValueError, match="already exists"):
        account.create_branch(pid, name="feature/simulated")

    account.tick(hours=2)
    renamed = account.rename_branch(pid, child["id"], "feature/renamed")
    assert renamed["updated_at"] > child["updated_at"]
    assert (
        get(fresh_sim, f"/projects/{pid}/branches/{child['id']}").json()["branch"]["name"]
        == "feature/renamed"
    )

    with pytest.raises(ValueError, match="children"):
        account.delete_branch(pid, child["id"])
    with pytest.raises(ValueError, match="default"):
        account.delete_branch(pid, default["id"])
    assert account.delete_branch(pid, child["id"], cascade=True) == [grandchild["id"], child["id"]]
    assert_error(get(fresh_sim, f"/projects/{pid}/branches/{child['id']}/roles"), 404)
    assert all(e["branch_id"] != child["id"] for e in account.endpoints(pid))


def test_databases_and_roles_created_leave_an_apply_config_operation(fresh_sim):
    account = fresh_sim.account
    pid = account.all_projects()[0]["id"]
    branch = next(b for b in account.branches(pid) if b["default"])
    before = len(account.operations(pid))
    database = account.create_database(pid, branch["id"], "created_db")
    role = account.create_role(pid, branch["id"], "created_role")
    served = get(fresh_sim, f"/projects/{pid}/branches/{branch['id']}/databases").json()["databases"]
    assert database in served and database["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    roles = get(fresh_sim, f"/projects/{pid}/branches/{branch['id']}/roles").json()["roles"]
    assert role["name"] in {r["name"] for r in roles}
    ops = get(fresh_sim, f"/projects/{pid}/operations", limit=2).json()["operations"]
    assert len(account.operations(pid)) == before + 2
    assert [(op["action"], op["branch_id"]) for op in ops] == [("apply_config", branch["id"])] * 2
    with pytest.raises(ValueError, match="already exists"):
        account.create_database(pid, branch["id"], "created_db")


def test_a_day_of_churn_changes_what_it_says_and_leaves_neon_s_signals():
    account = Account.generate(spec_of("realistic"))
    projects = {p["id"]: p for p in account.all_projects()}
    endpoints = {pid: {e["id"]: e for e in account.endpoints(pid)} for pid in projects}
    ops_before = {pid: len(account.operations(pid)) for pid in projects}
    day_start = account.now
    happened = account.churn_day(active_share=0.3, changed_share=0.1)
    assert account.now - day_start == timedelta(days=1)
    after = {p["id"]: p for p in account.all_projects()}
    # the active share had compute activity; besides them, only changed projects (a branch created
    # with its compute, or deleted with it) show compute news
    moved = {
        pid
        for pid in projects
        if after[pid].get("compute_last_active_at") != projects[pid].get("compute_last_active_at")
    }
    assert len(happened["active"]) == round(0.3 * len(projects))
    assert set(happened["active"]) <= moved <= set(happened["active"]) | set(happened["changed"])
    for pid in happened["active"]:
        new = account.operations(pid)[: len(account.operations(pid)) - ops_before[pid]]
        still_active = any(  # a compute active all day long starts and suspends nothing
            e["current_state"] == "active" and endpoints[pid][e["id"]]["current_state"] == "active"
            for e in account.endpoints(pid)
            if e["id"] in endpoints[pid]
        )
        assert still_active or {"start_compute", "suspend_compute"} & {op["action"] for op in new}
    changes = sum(
        len(happened[k]) for k in ("branch_created", "branch_deleted", "database_created", "project_renamed")
    )
    assert changes == len(happened["changed"]) == round(0.1 * len(projects)) and all(happened.values())
    for pid in happened["project_renamed"]:
        assert (
            after[pid]["name"] != projects[pid]["name"]
            and after[pid]["updated_at"] > projects[pid]["updated_at"]
        )
    today = {
        (op["branch_id"], op["action"])
        for pid in after
        for op in account.operations(pid)
        if op["created_at"] == account.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    assert all((b, "create_branch") in today for b in happened["branch_created"])
    assert all((b, "delete_timeline") in today for b in happened["branch_deleted"])
    # computes of the other projects did not move
    for pid in set(projects) - set(happened["active"]) - set(happened["changed"]):
        assert {e["id"]: e.get("last_active") for e in account.endpoints(pid)} == {
            eid: e.get("last_active")
            for eid, e in endpoints[pid].items()
            if eid in {x["id"] for x in account.endpoints(pid)}
        }


def test_rename_project_and_add_operations(fresh_sim):
    account = fresh_sim.account
    project = account.all_projects()[0]
    account.tick(hours=1)
    renamed = account.rename_project(project["id"], "renamed-project")
    assert renamed["name"] == "renamed-project" and renamed["updated_at"] > project["updated_at"]
    assert get(fresh_sim, f"/projects/{project['id']}").json()["project"]["name"] == "renamed-project"
    new = account.add_operations(project["id"], 3)
    ops = get(fresh_sim, f"/projects/{project['id']}/operations", limit=3).json()["operations"]
    assert ops == new == account.operations(project["id"])[:3]


def comparable(record: dict, volatile: list[str]) -> dict:
    return {k: v for k, v in record.items() if k not in volatile}


def test_tick_changes_only_volatile_fields():
    account = Account.generate(spec_of("demo"))
    projects = {p["id"]: p for p in account.all_projects()}
    branches = {b["id"]: b for pid in projects for b in account.branches(pid)}
    endpoints = {e["id"]: e for pid in projects for e in account.endpoints(pid)}
    consumption = {pid: account.consumption(pid, "hourly") for pid in projects}
    account.tick(hours=5)
    changed = Counter()
    for kind, before, after in (
        ("projects", projects, {p["id"]: p for p in account.all_projects()}),
        ("branches", branches, {b["id"]: b for pid in projects for b in account.branches(pid)}),
        ("endpoints", endpoints, {e["id"]: e for pid in projects for e in account.endpoints(pid)}),
    ):
        assert before.keys() == after.keys()
        for key, old in before.items():
            assert comparable(old, VOLATILE_FIELDS[kind]) == comparable(after[key], VOLATILE_FIELDS[kind]), (
                kind,
                key,
            )
            changed[kind] += old != after[key]
    assert all(changed[kind] for kind in ("projects", "branches", "endpoints")), changed
    for pid, old in consumption.items():
        new = account.consumption(pid, "hourly")
        assert new[: len(old)] == old, "past consumption never changes"
        assert len(new) == len(old) + (5 if old else 0)


# --------------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------------


def test_secrets_are_served_only_on_request(demo):
    assert demo.served_secrets() == set()
    pid = demo.all_projects()[0]["id"]
    assert all("password" not in r for b in demo.branches(pid) for r in demo.roles(pid, b["id"]))
    secret = Account.generate(spec_of("demo", serve_secrets=True))
    served = set()
    with Simulator(secret) as sim:
        for project in secret.all_projects():
            for branch in secret.branches(project["id"]):
                roles = get(sim, f"/projects/{project['id']}/branches/{branch['id']}/roles").json()["roles"]
                assert all(r["password"].startswith("npg_") and len(r["password"]) == 16 for r in roles)
                served |= {r["password"] for r in roles}
        tokens = set()  # and API key tokens, which Neon itself never lists
        for org in secret.organizations:
            keys = get(sim, f"/organizations/{org['id']}/api_keys")
            tokens |= {k["key"] for k in keys.json()} if keys.status_code == 200 else set()
    assert served == {s for s in secret.served_secrets() if s.startswith("npg_")} and len(served) > 10
    assert tokens and tokens <= secret.served_secrets()


def test_every_consumption_metric_the_simulator_serves_is_one_neon_s_spec_names():
    """The simulator takes its metric lists from the extract's settings (the spec names them in
    prose only); each is checked against the spec's text here, so that both stay Neon's."""
    from neon_simulator.params import SPEC_PATH

    spec_text = SPEC_PATH.read_text()
    assert all(metric in spec_text for metric in CONSUMPTION_METRICS)
    assert set(BRANCH_CONSUMPTION_METRICS) < set(CONSUMPTION_METRICS)
