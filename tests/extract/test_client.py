"""The HTTP client's rules, one at a time, against the simulator: retries and what is never
retried, Retry-After, pagination guards, the shared rate limiter, progress and the summary."""

from __future__ import annotations

import io
import threading
import time

import pytest
from neon_api_source import listings, settings
from neon_api_source.helpers import (
    NeonAuthError,
    NeonThrottled,
    PaginationError,
    RunStats,
    is_local,
    origin_of,
)
from neon_api_source.limiter import RateLimiter, neon_rate_limiter
from neon_api_source.reading import paginate_cursor
from neon_elt.progress import Progress, summary
from neon_simulator import PRESETS, Account, Faults, Simulator
from suite import client_for

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
        for _ in range(2):
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
    for _ in range(5):  # the burst is earned, as in TCP's slow start: these make it available
        limiter.succeeded("/r", 0)
    started = time.monotonic()
    workers = [threading.Thread(target=lambda: [limiter.acquire("/r") for _ in range(15)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    # 60 requests at 200/s with a burst of 5 (half of 10, a margin for bunched arrivals)
    assert 54 / 200 <= elapsed < 59 / 200 + 0.2


def test_both_consumption_endpoints_draw_on_one_budget():
    """Neon documents about 30 requests per minute for consumption history: read strictly, the
    projects and the branches endpoints share it."""
    projects, branches = listings.CONSUMPTION_ROUTES
    limiter = neon_rate_limiter()
    for route in (projects, branches):
        limiter.succeeded(route, 0)
    started = time.monotonic()
    for _ in range(2):
        limiter.acquire(projects)
        limiter.acquire(branches)
    elapsed = time.monotonic() - started
    # four requests at one shared 30/min (safety margin included) after an earned burst of at
    # most two: at least one interval of the shared pace, where two separate budgets need none
    interval = 60 / (settings.CONSUMPTION_REQUESTS_PER_MINUTE * settings.RATE_SAFETY)
    assert elapsed >= interval * 0.9


def test_a_429_halves_the_rate_once_and_holds_every_worker():
    limiter = RateLimiter(requests_per_minute=60 * 100, burst=20, route_requests_per_second=0, safety=1.0)
    ticket = limiter.acquire("/throttled")
    throttled_at = time.monotonic()
    limiter.throttled("/throttled", ticket)
    limiter.throttled("/throttled", ticket)  # sent before the cut: no second cut
    assert limiter.rate_per_minute == pytest.approx(60 * 50)
    sent = []

    def worker(route):
        limiter.acquire(route)
        sent.append(time.monotonic() - throttled_at)

    threads = [threading.Thread(target=worker, args=(f"/other/{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # one interval at the new rate (1/50 s), then no burst: the others follow 1/50 s apart
    assert sorted(sent)[0] >= 0.95 / 50 and sorted(sent)[-1] >= 2.95 / 50


def test_retry_after_holds_the_whole_account_that_long():
    limiter = RateLimiter(requests_per_minute=60 * 100, burst=20, route_requests_per_second=0, safety=1.0)
    ticket = limiter.acquire("/throttled")
    throttled_at = time.monotonic()
    assert limiter.throttled("/throttled", ticket, retry_after=0.3) == pytest.approx(0.3, abs=0.01)
    limiter.acquire("/other")
    assert time.monotonic() - throttled_at >= 0.3


def test_the_rate_climbs_back_as_requests_succeed_up_to_the_ceiling():
    limiter = RateLimiter(requests_per_minute=600, burst=20, route_requests_per_second=0, safety=1.0)
    stale = limiter.acquire("/r")
    limiter.throttled("/r", stale)
    assert limiter.rate_per_minute == 300
    limiter.succeeded("/r", stale)
    assert limiter.rate_per_minute == 300, "a request sent before the cut earns nothing"
    ticket = limiter.acquire("/r")
    for _ in range(10):
        limiter.succeeded("/r", ticket)
    # 10 successes at 5/s are 2 s at full speed: 2 / RATE_INCREASE_SECONDS of the ceiling more
    climbed = limiter.rate_per_minute - 300
    assert climbed == pytest.approx(600 * 2 / settings.RATE_INCREASE_SECONDS, rel=0.05)
    for _ in range(10_000):
        limiter.succeeded("/r", ticket)
    assert limiter.rate_per_minute == limiter.ceiling_per_minute == 600


def test_a_budget_share_lowers_the_ceiling_and_the_burst():
    full, half = neon_rate_limiter(), neon_rate_limiter(budget_share=0.5)
    assert half.ceiling_per_minute == pytest.approx(full.ceiling_per_minute / 2)
    assert full.ceiling_per_minute == pytest.approx(settings.REQUESTS_PER_MINUTE * settings.RATE_SAFETY)
    with pytest.raises(ValueError, match="budget_share"):
        neon_rate_limiter(budget_share=0)


def test_429s_do_not_use_up_the_attempts_a_5xx_would(account):
    faults = Faults(seed=2, burst_429_rate=0.6)
    with Simulator(account, faults=faults) as simulator:
        client = client_for(simulator, max_attempts=1)
        answers = [client.get(ORGS) for _ in range(10)]
        refused = simulator.stats.faults["burst_429"]
    assert all(a["organizations"] == account.organizations for a in answers)
    assert client.stats.throttled == refused > 0  # one attempt each, yet every request got through


def test_a_429_that_lasts_longer_than_the_documented_wait_fails_in_one_line(account):
    with Simulator(account, faults=Faults(persistent={ORGS: 429})) as simulator:
        client = client_for(simulator, max_throttle_wait=0.5)
        started = time.monotonic()
        with pytest.raises(NeonThrottled) as failure:
            client.get(ORGS)
        elapsed = time.monotonic() - started
    message = str(failure.value)
    assert "\n" not in message and message.startswith(f"GET {ORGS} answered 429: still refused after")
    assert "max_throttle_wait_seconds" in message
    assert 0.5 <= elapsed < 3


def test_progress_draws_per_resource_lines_on_a_terminal_only():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stats = RunStats()
    for _ in range(3):
        stats.count_request("/projects/{project_id}/branches")
    stats.count_rows("project_branches", 7)
    screen, quiet = Terminal(), io.StringIO()
    with Progress(stats, stream=screen, interval=0.01), Progress(stats, stream=quiet, interval=0.01):
        # a redraw (the cursor moved back to the first line) shows both have passed an interval
        deadline = time.monotonic() + 30
        while "\x1b[" not in screen.getvalue().replace("\x1b[2K", "") and time.monotonic() < deadline:
            time.sleep(0.005)
    drawn = screen.getvalue()
    assert "branches" in drawn and "3 requests" in drawn and "project_branches 7" in drawn
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
        "rate limit: off",
    ):
        assert fragment in text


def test_the_summary_says_1_row_not_1_rows():
    text = summary(RunStats(), None, {"organization_spending_limits": 1, "projects": 0})
    assert [line.split()[-2:] for line in text.splitlines()[2:4]] == [["1", "row"], ["0", "rows"]]


def test_the_summary_says_what_the_rate_limit_did():
    stats = RunStats(rate_ceiling=679.0, rate=679.0)
    stats.count_request("/projects")
    assert "rate limit: 679/min throughout, no 429s" in summary(stats, None, {})
    for _ in range(199):
        stats.count_request("/projects")
    stats.add(throttled=8)
    stats.rate = 205.4
    stats.pause(0.2)
    stats.pause(0.1)  # within the first pause: counted once
    assert stats.throttle_pause == pytest.approx(0.2, abs=0.02)
    line = summary(stats, None, {}).splitlines()[-1]
    assert line.startswith("  rate limit: settled at 205/min (ceiling 679/min), 8 x 429 (4.0% of requests)")
    assert line.endswith("paused 0.2 s for them")


def test_the_cause_of_a_failure_is_found_even_in_a_chain_that_loops():
    """One walk down an exception chain serves the client, the runner and the config: the
    innermost exception is the one that says what went wrong, and a loop ends the walk."""
    from neon_api_source.helpers import exception_chain, innermost

    outer, middle, inner = RuntimeError("step failed"), ValueError("wrapped"), OSError("disk full")
    outer.__cause__, middle.__context__ = middle, inner
    assert list(exception_chain(outer)) == [outer, middle, inner]
    assert innermost(outer) is inner
    inner.__context__ = outer  # a loop: each exception once, then the walk ends
    assert list(exception_chain(outer)) == [outer, middle, inner]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_any_loopback_host_is_the_simulator_whatever_its_port(host):
    """Neon is never on this machine: a base URL on any loopback address is the simulator (the
    report says so), and every port of it is one origin (the warehouse's origin check)."""
    assert is_local(f"http://{host}:4010/api/v2")
    assert origin_of(f"http://{host}:4010/api/v2") == origin_of(f"http://{host}:4020/api/v2")


@pytest.mark.parametrize("host", ["10.0.0.1", "localhost.example.com", "console.neon.tech"])
def test_a_host_off_the_loopback_is_an_api_of_its_own_on_each_port(host):
    assert not is_local(f"https://{host}:4010/api/v2")
    assert origin_of(f"https://{host}:4010/api/v2") != origin_of(f"https://{host}:4020/api/v2")
