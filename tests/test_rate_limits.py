"""The client's rate limiter against the simulator's strict limits: no 429 under Neon's own numbers
with jittered latency."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import client_for
from neon_api_source.helpers import neon_rate_limiter
from neon_simulator import PRESETS, Account, RateLimits, Simulator

BRANCHES = "/projects/{project_id}/branches"


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.generate(dataclasses.replace(PRESETS["demo"], projects=20, seed=16))


# --------------------------------------------------------------------------- Neon's own numbers


def test_no_429_under_neons_limits_with_jittered_latency(account):
    """60 requests to one route from 16 workers, against Neon's real numbers, with arrivals
    delayed by 20 to 50 ms: a client burst as deep as Neon's (38 of 40) puts more than 40 on
    the route within a second, and bunched arrivals find the account's bucket empty."""
    project_ids = [p["id"] for p in account.all_projects()] * 3
    with Simulator(account, rate_limits=RateLimits.neon(), latency=0.02, jitter=0.03) as simulator:
        client = client_for(simulator, limiter=neon_rate_limiter())
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda pid: client.get(BRANCHES, project_id=pid), project_ids))
        served = simulator.stats
    assert served.rate_limited == 0 and client.stats.throttled == 0
    assert served.total == len(project_ids)
