"""The simulator's rate limits, faults, latency, statistics and command line."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from neon_simulator import PRESETS, Account, Faults, RateLimits, Simulator
from neon_simulator.limits import RateLimiter
from simulator_helpers import session, validate, walk_projects

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.generate(dataclasses.replace(PRESETS["demo"], now=NOW))


def org_of(account: Account) -> str:
    return account.organizations[0]["id"]


def regions(sim: Simulator, http: requests.Session | None = None, **kwargs) -> requests.Response:
    return (http or session(sim.api_key)).get(sim.base_url + "/regions", **kwargs)


# --------------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets_follow_neons_documented_numbers():
    limits = RateLimits.neon()
    assert (limits.account_rate, limits.account_burst) == (700 / 60, 40)
    assert (limits.route_rate, limits.route_burst) == (40, 40)
    assert (limits.consumption_rate, limits.consumption_burst) == (0.5, 5)
    clock = FakeClock()
    limiter = RateLimiter(limits, clock)
    assert all(limiter.try_acquire("/projects") for _ in range(limits.account_burst))
    assert not limiter.try_acquire("/regions"), "the account bucket is shared by all routes"
    clock.now += 1 / limits.account_rate
    assert limiter.try_acquire("/regions") and not limiter.try_acquire("/regions")
    clock.now += 1000
    consumption = "/consumption_history/v2/projects"
    assert all(limiter.try_acquire(consumption) for _ in range(limits.consumption_burst))
    assert not limiter.try_acquire(consumption)
    assert limiter.try_acquire("/projects"), "a refused request takes no token from the other buckets"
    # the strictest reading of Neon's "about 30 per minute" for consumption history: one budget
    # for its two endpoints, projects and branches
    assert not limiter.try_acquire("/consumption_history/v2/branches")
    clock.now += 2
    assert limiter.try_acquire(consumption)


def test_the_route_limit_is_a_sliding_window_of_one_second():
    """Stricter than a bucket with the same numbers, which would admit a second's refill on top of
    a full burst within one second."""
    clock = FakeClock()
    limiter = RateLimiter(
        RateLimits(account_rate=1000, account_burst=1000, route_rate=2, route_burst=3), clock
    )
    assert [limiter.try_acquire("/projects") for _ in range(4)] == [True, True, True, False]
    assert limiter.try_acquire("/regions")
    clock.now += 1.0  # a bucket would hold two tokens again; the window (3 in 1.5 s) is still full
    assert not limiter.try_acquire("/projects")
    clock.now += 0.5
    assert [limiter.try_acquire("/projects") for _ in range(4)] == [True, True, True, False]
    neon = RateLimiter(RateLimits.neon(), clock)
    clock.now += 100
    assert sum(neon.try_acquire("/projects") for _ in range(60)) == 40
    clock.now += 0.99
    assert not neon.try_acquire("/projects"), "at most 40 in any second on one route"
    assert neon.try_acquire("/regions")


def test_a_squeezed_budget_scales_the_account_or_every_limit():
    neon = RateLimits.neon()
    squeezed = neon.scaled(0.3)
    assert (squeezed.account_rate * 60, squeezed.account_burst) == pytest.approx((210, 12))
    assert (squeezed.route_rate, squeezed.route_burst, squeezed.consumption_burst) == (40, 40, 5)
    everywhere = neon.scaled(0.3, routes=True)
    assert (everywhere.account_rate * 60, everywhere.account_burst) == pytest.approx((210, 12))
    assert (everywhere.route_rate, everywhere.route_burst) == pytest.approx((12, 12))
    assert (everywhere.consumption_rate * 60, everywhere.consumption_burst) == pytest.approx((9, 1))
    assert neon.scaled(0.01).account_burst == 1
    assert neon.floor_seconds(740) == pytest.approx(neon.scaled(0.5).floor_seconds(720) / 2)


def test_the_budget_drops_after_a_number_of_requests():
    clock = FakeClock()
    limiter = RateLimiter(RateLimits(account_rate=10, account_burst=10).dropping(after=4, to=0.5), clock)
    assert all(limiter.try_acquire(f"/r{i}") for i in range(4))
    # from the fifth request on: a bucket of 5 (the 6 tokens left are cut to 5), refilled at 5/s
    assert [limiter.try_acquire(f"/s{i}") for i in range(6)] == [True] * 5 + [False]
    clock.now += 0.2
    assert limiter.try_acquire("/t") and not limiter.try_acquire("/u")


def test_floor_formula():
    limits = RateLimits.neon()
    assert limits.floor_seconds(40) == 0
    assert limits.floor_seconds(740) == pytest.approx(60)
    assert limits.floor_seconds(65_000) == pytest.approx((65_000 - 40) * 60 / 700)
    assert limits.floor_seconds(100, consumption_requests=35) == pytest.approx(60)


def test_hammering_beyond_the_burst_yields_429s_without_retry_after(account):
    limits = RateLimits(account_rate=2, account_burst=8)
    with Simulator(account, rate_limits=limits) as sim:
        http = session(sim.api_key)
        answers = [regions(sim, http) for _ in range(20)]
        statuses = [a.status_code for a in answers]
        assert statuses[:8] == [200] * 8 and 429 in statuses
        for answer in answers:
            if answer.status_code == 429:
                assert "Retry-After" not in answer.headers
                validate(answer)
                assert answer.json()["message"]
        assert sim.stats.rate_limited == statuses.count(429)


def test_no_429_within_the_limits(account):
    limits = RateLimits(account_rate=50, account_burst=5)
    with Simulator(account, rate_limits=limits) as sim:
        http = session(sim.api_key)
        for _ in range(15):
            assert regions(sim, http).status_code == 200
            time.sleep(1 / 40)
        assert sim.stats.rate_limited == 0


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


def test_error_faults_answer_5xx_general_errors(account):
    with Simulator(account, faults=Faults(error_rate=1.0)) as sim:
        answers = [regions(sim) for _ in range(12)]
        assert {a.status_code for a in answers} == {500, 503}
        for answer in answers:
            validate(answer)
        assert sim.stats.faults["error"] == 12


def test_dropped_connections(account):
    with Simulator(account, faults=Faults(drop_rate=1.0)) as sim:
        with pytest.raises(requests.ConnectionError):
            regions(sim)
        assert sim.stats.faults["drop"] == 1


def test_slow_answers_outlast_the_client_timeout(account):
    with Simulator(account, faults=Faults(slow_rate=1.0, slow_seconds=0.4)) as sim:
        with pytest.raises(requests.ReadTimeout):
            regions(sim, timeout=0.1)
        assert regions(sim, timeout=5).status_code == 200, "a patient client gets the answer"


def test_truncated_bodies(account):
    seen = set()
    with Simulator(account, faults=Faults(truncate_rate=1.0, seed=1)) as sim:
        for _ in range(8):
            try:
                response = regions(sim)
                assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
                with pytest.raises(ValueError):
                    response.json()
                seen.add("broken_json")
            except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError):
                seen.add("short_body")
        assert seen == {"short_body", "broken_json"}


def test_a_truncation_counts_only_when_a_body_was_truncated(account):
    """An error answer (a 404 here, a 403 on an access listing) has no body to cut short: the
    fault counts only when it happened, so tests can hold the client to one retry per fault."""
    with Simulator(account, faults=Faults(truncate_rate=1.0, seed=1)) as sim:
        missing = session(sim.api_key).get(sim.base_url + "/projects/no-such-project")
        assert missing.status_code == 404
        assert sim.stats.faults.get("truncate", 0) == 0
        with pytest.raises((ValueError, requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            regions(sim).json()
        assert sim.stats.faults["truncate"] == 1


def test_not_json(account):
    with Simulator(account, faults=Faults(not_json_rate=1.0)) as sim:
        response = regions(sim)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            response.json()


@pytest.mark.parametrize("retry_after", [None, 7])
def test_burst_429_with_and_without_retry_after(account, retry_after):
    with Simulator(account, faults=Faults(burst_429_rate=1.0, retry_after=retry_after)) as sim:
        response = regions(sim)
        assert response.status_code == 429
        validate(response)
        assert response.headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
        assert sim.stats.rate_limited == 0 and sim.stats.faults["burst_429"] == 1


def test_persistent_faults_by_route_or_path(account):
    projects = account.all_projects(org_of(account))
    victim, other = projects[0]["id"], projects[1]["id"]
    faults = Faults(
        persistent={"/projects/{project_id}/endpoints": 503, f"/projects/{other}/operations": 500}
    )
    with Simulator(account, faults=faults) as sim:
        http = session(sim.api_key)
        for _ in range(3):
            assert http.get(f"{sim.base_url}/projects/{victim}/endpoints").status_code == 503
        assert http.get(f"{sim.base_url}/projects/{other}/operations").status_code == 500
        assert http.get(f"{sim.base_url}/projects/{victim}/operations").status_code == 200
        assert http.get(f"{sim.base_url}/projects/{victim}/branches").status_code == 200
        assert sim.stats.faults["persistent"] == 4


def test_project_deleted_right_after_it_was_listed():
    account = Account.generate(dataclasses.replace(PRESETS["demo"], now=NOW))
    org = org_of(account)
    victim = account.all_projects(org)[1]["id"]
    with Simulator(account, faults=Faults(delete_project_after_list=victim)) as sim:
        http = session(sim.api_key)
        listed, _ = walk_projects(http, sim.base_url, org_id=org, limit=2)
        assert victim in [p["id"] for p in listed], "listed once, in full"
        assert http.get(f"{sim.base_url}/projects/{victim}/branches").status_code == 404
        relisted, _ = walk_projects(http, sim.base_url, org_id=org)
        assert victim not in [p["id"] for p in relisted]
        assert sim.stats.faults["delete_project_after_list"] == 1


def test_a_count_of_projects_deleted_after_listing():
    account = Account.generate(dataclasses.replace(PRESETS["demo"], now=NOW))
    org = org_of(account)
    before = [p["id"] for p in account.all_projects(org)]
    with Simulator(account, faults=Faults(delete_project_after_list=3)) as sim:
        listed, _ = walk_projects(session(sim.api_key), sim.base_url, org_id=org, limit=2)
        assert [p["id"] for p in listed] == before
        assert [p["id"] for p in account.all_projects(org)] == before[3:]


def test_mixed_faults_hit_the_configured_share_and_the_server_survives(account):
    faults = Faults.mixed(0.3, seed=5)
    assert faults.total_rate == pytest.approx(0.3)
    outcomes = []
    with Simulator(account, faults=faults) as sim:
        http = session(sim.api_key)
        for _ in range(300):
            try:
                response = http.get(sim.base_url + "/regions", timeout=5)
                response.json()
                outcomes.append(response.status_code)
            except (requests.RequestException, ValueError):
                outcomes.append("broken")
                http = session(sim.api_key)
        injected = sum(sim.stats.faults.values())
        assert 0.2 < injected / 300 < 0.4
        assert outcomes.count(200) >= 300 - injected
        assert {"error", "burst_429", "drop", "truncate"} <= set(sim.stats.faults)
        assert outcomes[-30:].count(200) > 0, "still serving after every kind of fault"


def test_faults_are_deterministic(account):
    def run() -> list:
        outcomes = []
        with Simulator(account, faults=Faults(error_rate=0.3, burst_429_rate=0.2, seed=9)) as sim:
            http = session(sim.api_key)
            outcomes = [regions(sim, http).status_code for _ in range(40)]
        return outcomes

    assert run() == run()


def test_faults_from_the_environment():
    faults = Faults.from_env(
        {
            "NEON_SIM_ERROR_RATE": "0.1",
            "NEON_SIM_RETRY_AFTER": "3",
            "NEON_SIM_FAULT_SEED": "4",
            "NEON_SIM_PERSISTENT": "/projects/{project_id}/endpoints=503,/regions=500",
            "NEON_SIM_DELETE_PROJECT_AFTER_LIST": "2",
        }
    )
    assert (faults.error_rate, faults.retry_after, faults.seed) == (0.1, 3, 4)
    assert faults.persistent == {"/projects/{project_id}/endpoints": 503, "/regions": 500}
    assert faults.delete_project_after_list == 2
    mixed = Faults.from_env(
        {"NEON_SIM_FAULT_RATE": "0.2", "NEON_SIM_DELETE_PROJECT_AFTER_LIST": "shiny-wind-028834"}
    )
    assert mixed.total_rate == pytest.approx(0.2) and mixed.delete_project_after_list == "shiny-wind-028834"
    assert not Faults.from_env({}).enabled
    with pytest.raises(ValueError, match="add up"):
        Faults(error_rate=0.7, drop_rate=0.7)


# --------------------------------------------------------------------------------------------------
# Latency, concurrency, statistics, lifecycle
# --------------------------------------------------------------------------------------------------


def test_jitter_spreads_the_arrivals(account):
    with Simulator(account, latency=0.01, jitter=0.1) as sim:
        http = session(sim.api_key)
        times = []
        for _ in range(12):
            start = time.monotonic()
            assert regions(sim, http).status_code == 200
            times.append(time.monotonic() - start)
    assert min(times) >= 0.01
    assert max(times) - min(times) > 0.04, "delays spread over 10..110 ms"


def test_latency_is_added_and_requests_run_in_parallel(account):
    latency = 0.2
    with Simulator(account, latency=latency) as sim:
        start = time.monotonic()
        assert regions(sim).status_code == 200
        assert time.monotonic() - start >= latency
        with ThreadPoolExecutor(10) as pool:
            start = time.monotonic()
            statuses = list(pool.map(lambda _: regions(sim).status_code, range(10)))
            elapsed = time.monotonic() - start
        assert statuses == [200] * 10
        assert elapsed < 5 * latency, f"10 requests of {latency}s took {elapsed:.2f}s: not served in parallel"


def test_statistics(account):
    org = org_of(account)
    pid = account.all_projects(org)[0]["id"]
    with Simulator(account) as sim:
        http = session(sim.api_key)
        http.get(f"{sim.base_url}/projects", params={"org_id": org})
        http.get(f"{sim.base_url}/projects/{pid}/branches")
        http.get(f"{sim.base_url}/projects/{pid}/branches")
        http.get(f"{sim.base_url}/nope")
        stats = sim.stats
        assert stats.total == 4
        assert stats.by_route == {"/projects": 1, "/projects/{project_id}/branches": 2, "<unknown>": 1}
        assert stats.by_request[f"/api/v2/projects/{pid}/branches"] == 2
        assert stats.by_request[f"/api/v2/projects?org_id={org}"] == 1
        assert stats.by_status == {200: 3, 404: 1}
        sim.reset_stats()
        assert sim.stats.total == 0 and not sim.stats.by_request
        assert stats.total == 4, "snapshots do not change"


def test_binds_loopback_only_and_stops_cleanly(account):
    with pytest.raises(ValueError, match="loopback"):
        Simulator(account, host="0.0.0.0")
    sim = Simulator(account).start()
    http = session(sim.api_key)
    assert regions(sim, http).status_code == 200
    assert sim.base_url == f"http://127.0.0.1:{sim.port}/api/v2"
    start = time.monotonic()
    sim.stop()
    assert time.monotonic() - start < 2, "an idle keep-alive client must not hold stop() up"
    with pytest.raises(requests.ConnectionError):
        regions(sim, http)


def test_command_line_rate_share(monkeypatch):
    from neon_simulator.__main__ import _describe, _parser, _rate_limits

    def limits(*argv):
        return _rate_limits(_parser().parse_args(list(argv)))

    assert limits() == RateLimits.neon() and _describe(limits()) == "neon"
    assert limits("--rate-limits", "off") is None
    assert limits("--rate-share", "0.3") == RateLimits.neon().scaled(0.3)
    assert _describe(limits("--rate-share", "0.3")) == "30% of neon's"
    dropping = limits("--rate-share", "0.3", "--rate-share-after", "200")
    assert dropping == RateLimits.neon().dropping(after=200, to=0.3)
    assert _describe(dropping) == "neon, 30% of them after 200 requests"
    monkeypatch.setenv("NEON_SIM_RATE_SHARE", "0.5")
    monkeypatch.setenv("NEON_SIM_RATE_SHARE_AFTER", "10")
    assert limits() == RateLimits.neon().dropping(after=10, to=0.5)
    with pytest.raises(ValueError, match="rate share"):
        limits("--rate-share", "2")


def test_command_line(tmp_path: Path):
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neon_simulator",
            "--port",
            "0",
            "--preset",
            "tiny",
            "--seed",
            "5",
            "--now",
            "2026-05-01T12:00:00Z",
            "--org-key",
            "--serve-secrets",
            "--latency-ms",
            "1",
            "--url-file",
            str(url_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NEON_SIM_ERROR_RATE": "0"},
    )
    try:
        deadline = time.monotonic() + 20
        while not url_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        base_url = url_file.read_text().strip()
        first = process.stdout.readline()
        key = process.stdout.readline().split()[-1]
        assert first.startswith(f"Neon API simulator on {base_url} (preset tiny, 3 projects")
        account = Account.generate(dataclasses.replace(PRESETS["tiny"], seed=5, now=NOW, serve_secrets=True))
        assert key == account.org_api_key(account.organizations[0]["id"])
        http = session(key)
        assert http.get(base_url + "/regions").status_code == 403, "an org key"
        projects = http.get(base_url + "/projects").json()["projects"]
        assert projects == account.all_projects()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out
