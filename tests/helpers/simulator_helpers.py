"""Helpers of the simulator tests: Neon's OpenAPI spec as an openapi-core validator, HTTP sessions
against a running simulator, the check of an error answer, pagination walkers that check the
envelopes as they go, and the accounts' spec at a fixed clock. The accounts and simulators the
modules share are fixtures of tests/simulator/conftest.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import requests
from neon_simulator import PRESETS, Account, AccountSpec, Simulator
from neon_simulator.account import CONSUMPTION_METRICS
from neon_simulator.params import spec as simulator_spec
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse


def _string_keys(node):
    """YAML reads response codes such as ``200:`` as integers; OpenAPI wants strings."""
    if isinstance(node, dict):
        return {str(key): _string_keys(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_string_keys(item) for item in node]
    return node


@lru_cache(maxsize=1)
def spec() -> dict:
    """Neon's spec as a dict with string keys (the simulator's copy, read once per process)."""
    return _string_keys(simulator_spec())


@lru_cache(maxsize=1)
def openapi() -> OpenAPI:
    """The spec as an openapi-core validator, with a relative server URL so that requests to any
    simulator port match it."""
    # Neon's spec is taken as given: skip openapi-core's own check of it (about a second).
    return OpenAPI.from_dict(
        {**spec(), "servers": [{"url": "/api/v2"}]}, config=Config(spec_validator_cls=None)
    )


def schema(name: str) -> dict:
    """A component schema of the spec, unresolved."""
    return spec()["components"]["schemas"][name]


def validate(response: requests.Response, *, request_valid: bool = True) -> None:
    """Validate a real exchange against the spec: the response always, the request unless the
    test sent an invalid one on purpose (then only the response, against the error schema)."""
    request = RequestsOpenAPIRequest(response.request)
    if request_valid:
        openapi().validate_request(request)
    openapi().validate_response(request, RequestsOpenAPIResponse(response))


def session(api_key: str) -> requests.Session:
    """A keep-alive session that authenticates with ``api_key``."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {api_key}"
    return http


def get(sim: Simulator, path: str, *, key: str | None = None, **params) -> requests.Response:
    """GET ``path`` from ``sim`` with ``key`` (the personal key unless given), the exchange validated
    against the spec: the response always, the request unless the simulator refused it (a 400)."""
    response = session(key or sim.api_key).get(sim.base_url + path, params=params)
    validate(response, request_valid=response.status_code != 400)
    return response


# A fixed clock, so that what the simulator serves does not move with the day the tests run.
NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def spec_of(preset: str, **changes) -> AccountSpec:
    """A preset's account spec at ``NOW``, with ``changes``."""
    return dataclasses.replace(PRESETS[preset], now=NOW, **changes)


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


def walk_projects(
    http: requests.Session, base_url: str, *, check=validate, **params
) -> tuple[list[dict], list[dict]]:
    """Page through ``/projects`` until an empty page; returns (projects, every response body).

    Asserts the real-Neon envelope on every page: ``pagination.cursor`` always present.
    """
    projects, bodies, cursor = [], [], None
    for _ in range(10_000):
        response = http.get(
            f"{base_url}/projects", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert response.status_code == 200, response.text
        check(response)
        body = response.json()
        bodies.append(body)
        assert body["pagination"]["cursor"], body
        if not body["projects"]:
            return projects, bodies
        projects.extend(body["projects"])
        cursor = body["pagination"]["cursor"]
    raise AssertionError("/projects never returned an empty page")


def walk_branches(http: requests.Session, base_url: str, project_id: str, *, check=validate, **params):
    """Page through a project's branches following ``pagination.next``; returns (branches, bodies)."""
    branches, bodies, cursor = [], [], None
    for _ in range(10_000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = http.get(f"{base_url}/projects/{project_id}/branches", params=query)
        assert response.status_code == 200, response.text
        check(response)
        body = response.json()
        bodies.append(body)
        branches.extend(body["branches"])
        cursor = body["pagination"].get("next")
        if cursor is None:
            return branches, bodies
    raise AssertionError("branches pagination never ended")


def walk_cursor(
    http: requests.Session, url: str, key: str, *, check=validate, **params
) -> tuple[list[dict], list[dict]]:
    """Page through a ``pagination.cursor`` list (operations, consumption) until an empty page."""
    items, bodies, cursor = [], [], None
    for _ in range(10_000):
        response = http.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        check(response)
        body = response.json()
        bodies.append(body)
        assert body["pagination"]["cursor"], body
        if not body[key]:
            return items, bodies
        items.extend(body[key])
        cursor = body["pagination"]["cursor"]
    raise AssertionError(f"{url} never returned an empty page")
