"""The HTTP client's rules, one at a time, against the simulator: retries and what is never
retried, Retry-After, pagination guards, the shared rate limiter, progress and the summary."""

from __future__ import annotations

import io
import threading
import time

import pytest
from conftest import client_for
from neon_api_source.helpers import (
    NeonAuthError,
    PaginationError,
    RateLimiter,
    RunStats,
    paginate_cursor,
)
from neon_elt.progress import Progress, summary
from neon_simulator import PRESETS, Account, Faults, Simulator

ORGS = "/users/me/organizations"


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.generate(PRESETS["tiny"])


@pytest.mark.parametrize("kind", ["error", "drop", "truncate", "slow", "not_json"])
def test_transient_failures_are_retried_until_the_answer_comes(kind, account):
    options = {"slow_seconds": 1.5} if kind == "slow" else {}
    faults = Faults(seed=5, **{f"{kind}_rate": 0.5}, **options)
    with Simulator(account, faults=faults) as simulator:
        client = client_for(simulator, read_timeout=0.5, max_attempts=12)
        answers = [client.get(ORGS) for _ in range(8)]
        injected = simulator.stats.faults[kind]
    assert all(a["organizations"] == account.organizations for a in answers)
    assert injected > 0
    assert client.stats.retries == injected


def test_a_429_waits_at_least_the_retry_after_it_was_given(account):
    faults = Faults(seed=1, burst_429_rate=0.5, retry_after=1)
    with Simulator(account, faults=faults) as simulator:
        client = client_for(simulator, max_attempts=12)
        started = time.monotonic()
        for _ in range(4):
            client.get(ORGS)
        elapsed = time.monotonic() - started
        throttled = simulator.stats.faults["burst_429"]
    assert throttled > 0 and client.stats.throttled == throttled
    assert elapsed >= throttled * 1.0


def test_a_401_is_never_retried_and_names_the_key_source(account):
    with Simulator(account) as simulator:
        client = client_for(simulator, api_key="napi_wrong")
        with pytest.raises(NeonAuthError) as failure:
            client.get(ORGS)
        assert simulator.stats.total == 1
    assert "the test simulator key" in str(failure.value) and "401" in str(failure.value)


def test_a_repeated_cursor_fails_loudly_instead_of_looping():
    class Looping:
        """An API that hands back the same cursor forever."""

        def get(self, route, params=None, validate=None, **path):
            return {"projects": [{"id": "p"}], "pagination": {"cursor": "same"}}

    pages = paginate_cursor(Looping(), "/projects", "projects", {"limit": 400})
    with pytest.raises(PaginationError, match="repeated cursor"):
        for _ in range(5):
            next(pages)


def test_the_limiter_spaces_requests_at_the_configured_rate_after_half_the_burst():
    limiter = RateLimiter(requests_per_minute=60 * 200, burst=10, route_requests_per_second=0, safety=1.0)
    started = time.monotonic()
    workers = [threading.Thread(target=lambda: [limiter.acquire("/r") for _ in range(15)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    # 60 requests at 200/s with a burst of 5 (half of 10, a margin for bunched arrivals)
    assert 54 / 200 <= elapsed < 59 / 200 + 0.2


def test_a_429_penalty_holds_every_worker():
    limiter = RateLimiter(requests_per_minute=60 * 1000, burst=20, route_requests_per_second=0)
    limiter.penalize(0.3, "/throttled")
    waited = []

    def worker(route):
        started = time.monotonic()
        limiter.acquire(route)
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=worker, args=(f"/other/{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert min(waited) >= 0.25


def test_progress_draws_per_resource_lines_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stats = RunStats()
    for _ in range(3):
        stats.count_request("/projects/{project_id}/branches")
    stats.count_rows("project_branches", 7)
    screen = Terminal()
    with Progress(stats, stream=screen, interval=0.01):
        time.sleep(0.05)
    drawn = screen.getvalue()
    assert "branches" in drawn and "3 requests" in drawn and "project_branches 7" in drawn

    quiet = io.StringIO()
    with Progress(stats, stream=quiet, interval=0.01):
        time.sleep(0.03)
    assert quiet.getvalue() == ""


def test_the_summary_reports_rows_requests_retries_throttling_skips_and_the_load():
    stats = RunStats()
    stats.count_request("/projects")
    stats.add(retries=2, throttled=1, skipped_404=3)
    text = summary(stats, "1234.5", {"projects": 12, "roles": 40})
    for fragment in (
        "projects",
        "12 rows",
        "roles",
        "40 rows",
        "requests 1",
        "retries 2",
        "429s 1",
        "skipped 404s 3",
        "load id 1234.5",
        "elapsed",
    ):
        assert fragment in text
