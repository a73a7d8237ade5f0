"""The simulator checked against Neon's OpenAPI spec: every route and parameter rule, the fields
its records carry, the secrets it serves only on request, and the same seed giving the same bytes.

Expected values are always computed from the account accessors, never hard-coded.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from neon_simulator import Account, Simulator
from neon_simulator.account import CONSUMPTION_METRICS
from neon_simulator.live import SPENDING_LIMIT_PLANS
from neon_simulator.params import _param
from neon_simulator.reference import BRANCH_CONSUMPTION_METRICS
from neon_simulator.routing import ROUTE_TEMPLATES, match_route
from simulator_helpers import (
    assert_error,
    consumption_params,
    get,
    plan_org,
    schema,
    session,
    spec,
    spec_of,
    validate,
)


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
