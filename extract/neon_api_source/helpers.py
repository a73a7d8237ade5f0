"""HTTP mechanics for the Neon API source: one client, one rate limiter, one retry policy and one
pagination helper per pagination scheme, shared by every resource."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import settings

CONSUMPTION_ROUTE = settings.CONSUMPTION_PROJECTS_ROUTE


# --------------------------------------------------------------------------------------------- errors


class SourceConfigError(ValueError):
    """A setting that cannot work: the message is one line that names it."""


class NeonAPIError(Exception):
    """A request that failed for good. The message names the endpoint and the status."""

    def __init__(self, route: str, status: int | None, detail: str, attempts: int = 1):
        self.route = route
        self.status = status
        self.detail = detail
        self.attempts = attempts
        what = f"answered {status}" if status else "failed"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"GET {route} {what}{tries}: {detail}")


class NeonSetupError(NeonAPIError):
    """An answer that says the settings are wrong (the key, the base URL), not the API: someone
    has to fix them, and retrying will not help (exit 2, as for configuration)."""


class NeonAuthError(NeonSetupError):
    """401: the key is wrong, revoked or missing. Never retried."""


class NeonForbidden(NeonAPIError):
    """403: the key may not read this endpoint (plan, permission or key type)."""


class NeonNotFound(NeonAPIError):
    """404: the object is gone, typically deleted between the listing and this request."""


class NeonThrottled(NeonAPIError):
    """429s for longer than the run may wait (RetryPolicy.max_throttle_wait)."""

    def __init__(self, route: str, waited: float, refusals: int):
        super().__init__(
            route,
            429,
            f"still refused after {waited:.0f} s of waiting ({refusals} x 429; max_throttle_wait_seconds): "
            "the account's rate limit is used up, by other tools sharing it; run again later",
        )


class NeonDeadline(NeonAPIError):
    """The run passed its deadline (RetryPolicy.run_deadline): no request waits or goes on."""

    def __init__(self, route: str, seconds: float):
        super().__init__(
            route,
            None,
            f"the run passed its deadline of {seconds:g} s (run_deadline_seconds); is the API hanging?",
        )


class PaginationError(NeonAPIError):
    """The API handed back a cursor it had already given: paging on would loop forever."""


class _Transient(Exception):
    """Internal: a failure worth retrying (429, 5xx, dropped connection, corrupt body)."""

    def __init__(self, status: int | None, detail: str, retry_after: float | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


# ---------------------------------------------------------------------------------------------- stats


@dataclass
class RunStats:
    """Counters for the run summary. Thread-safe through `add` and the other methods."""

    requests: Counter = field(default_factory=Counter)  # per route template
    rows: Counter = field(default_factory=Counter)  # per table
    retries: int = 0
    throttled: int = 0  # 429 answers received
    skipped_404: int = 0
    skipped_optional: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: Any = None  # the incremental plan (incremental.Plan) once the run has decided it
    started: float = field(default_factory=time.monotonic)
    # the client-side limiter: its ceiling and its rate at the end, in requests per minute
    # (None: no limiter), and the wall time during which 429s held requests back on purpose
    # (the limiter's pause, Retry-After, backoff), overlaps counted once
    rate_ceiling: float | None = None
    rate: float | None = None
    throttle_pause: float = 0.0
    _paused_until: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def count_request(self, route: str) -> None:
        with self._lock:
            self.requests[route] += 1

    def count_rows(self, table: str, n: int) -> None:
        with self._lock:
            self.rows[table] += n

    def note(self, message: str) -> None:
        with self._lock:
            if message not in self.notes:
                self.notes.append(message)

    def pause(self, seconds: float) -> None:
        """A 429 holds requests back for `seconds` from now."""
        with self._lock:
            now = time.monotonic()
            end = now + seconds
            self.throttle_pause += max(0.0, end - max(now, self._paused_until))
            self._paused_until = max(self._paused_until, end)

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


# -------------------------------------------------------------------------------------- rate limiting

# Hand-written: PyPI's limiters (pyrate-limiter, limits, aiolimiter) enforce fixed rates, and
# aiolimiter serves asyncio only; none lowers a rate shared by threads on 429s and climbs back.


class _Pace:
    """Generic cell rate algorithm at a rate that adapts between a floor and `ceiling` (requests
    per second).

    The burst is kept as a time window, so it shrinks with the rate: `burst` requests at the
    ceiling, proportionally fewer below it. At the start it is earned, as TCP's slow start earns
    its window: at most one request more than have succeeded, so a run granted less than it
    assumes learns so before its first burst, not from it. After a cut there is no burst until
    the pace has idled for one (GCRA's own rule). `cuts` counts the decreases: a 429 for a
    request sent (or reserved) before the last one answers a rate already given up."""

    __slots__ = ("ceiling", "floor", "rate", "window", "tat", "cuts", "earned")

    def __init__(self, ceiling: float, burst: int):
        self.ceiling = self.rate = ceiling
        self.floor = min(ceiling, settings.MIN_REQUESTS_PER_MINUTE / 60)
        self.window = (max(1, burst) - 1) / ceiling
        self.tat = 0.0  # theoretical arrival time of the next conforming request
        self.cuts = 0
        self.earned = 0  # successes so far (sent under the rate in force)

    def tolerance(self) -> float:
        """How far ahead of its schedule a request may go: the burst, as earned so far."""
        return min(self.window, self.earned / self.rate)

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.tolerance())

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + 1.0 / self.rate

    def succeeded(self, ticket: int) -> None:
        """Additive increase: 1/RATE_INCREASE_SECONDS of the ceiling per second at full speed,
        but never more than RATE_INCREASE_CAP of the rate for one success (for a slow limit, one
        success stands for many seconds). A success of a request sent before the last cut says
        nothing about the new rate, and earns nothing."""
        if ticket != self.cuts:
            return
        self.earned += 1
        if self.rate < self.ceiling:
            step = min(
                self.ceiling / settings.RATE_INCREASE_SECONDS / self.rate,
                self.rate * settings.RATE_INCREASE_CAP,
            )
            self.rate = min(self.ceiling, self.rate + step)

    def throttled(self, ticket: int, now: float, hold: float | None) -> bool:
        """A 429 for a request sent under cut number `ticket`. If no cut has answered it yet:
        multiplicative decrease, and the next request goes out after `hold` seconds (one
        interval at the new rate by default) with no burst: the API's bucket is empty. A 429
        that an earlier cut has answered changes nothing, unless it asks to hold longer.
        True if it cut."""
        if ticket == self.cuts:
            self.rate = max(self.floor, self.rate * settings.RATE_DECREASE)
            self.cuts += 1
            self.tat = now + (hold if hold is not None else 1.0 / self.rate) + self.tolerance()
            return True
        if hold is not None:
            self.tat = max(self.tat, now + hold + self.tolerance())
        return False


class RateLimiter:
    """One limiter for the whole account, shaped like Neon's limits and adapting to what the
    account actually grants: a sustained rate per account with a burst allowance, a per-route
    rate, and tighter limits for particular routes (consumption). The numbers given are the API's;
    the limiter keeps its own margin below them (settings.RATE_SAFETY, BURST_SHARE, ROUTE_*).

    `acquire` waits in two stages: the route's own limits first (its per-route pace and, for
    consumption, the tighter limit), by reservation; then a place in the account's queue, so a
    request held by its route does not keep an account slot idle meanwhile. The account's queue
    serves requests in order, except that a request from outside `fan_out`'s workers goes first:
    that is the thread driving the extract, paging through one listing at a time, and the whole
    extract waits for it. `throttled` reports a 429: the rate of the account (or of the special
    route) is cut for every worker, and everyone pauses; `succeeded` lets the rate climb back
    towards the ceiling. A rate of 0 disables a limit.

    Time is read from `clock` (seconds, monotonic), and the limiter waits with `wait(condition,
    seconds)`, which returns when the condition is notified or the seconds have passed: by default
    time.monotonic and Condition.wait. A test passes a fake clock and a `wait` that moves it on.
    """

    def __init__(
        self,
        requests_per_minute: float = settings.REQUESTS_PER_MINUTE,
        burst: int = settings.ACCOUNT_BURST,
        route_requests_per_second: float = settings.ROUTE_REQUESTS_PER_SECOND,
        route_burst: int = settings.ROUTE_BURST,
        route_limits: Mapping[str | tuple[str, ...], tuple[float, int]] | None = None,
        safety: float = settings.RATE_SAFETY,
        budget_share: float = settings.BUDGET_SHARE,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Condition, float], object] = threading.Condition.wait,
    ):
        if not 0 < budget_share <= 1:
            raise ValueError(f"budget_share must be within (0, 1], not {budget_share!r}")
        scale = safety * budget_share
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._clock = clock
        self._wait = wait
        self._waiting: list[tuple[int, int]] = []  # the account's queue: (0 urgent or 1, arrival)
        self._closed: Exception | None = None
        self._arrivals = itertools.count()
        self._account = (
            _Pace(requests_per_minute / 60 * scale, _client_burst(burst, budget_share))
            if requests_per_minute
            else None
        )
        self._route_rate = route_requests_per_second * settings.ROUTE_RATE_SHARE * scale
        self._route_burst = max(1, round(route_burst * settings.ROUTE_BURST_SHARE * budget_share))
        self._routes: dict[str, _Pace] = {}
        # a key that is a tuple of routes gives them one limit to share
        self._extra = {
            route: pace
            for routes, (per_minute, extra_burst) in (route_limits or {}).items()
            if per_minute
            for pace in [_Pace(per_minute / 60 * scale, _client_burst(extra_burst, budget_share))]
            for route in ((routes,) if isinstance(routes, str) else routes)
        }

    @property
    def enabled(self) -> bool:
        return self._account is not None

    @property
    def ceiling_per_minute(self) -> float | None:
        return self._account.ceiling * 60 if self._account else None

    @property
    def rate_per_minute(self) -> float | None:
        """The account's rate now (None when the limiter is off)."""
        return self._account.rate * 60 if self._account else None

    def _own_paces(self, route: str) -> list[_Pace]:
        """The limits of this route alone: its per-route pace and its special limit, if any."""
        paces = []
        if self._route_rate:
            if route not in self._routes:
                self._routes[route] = _Pace(self._route_rate, self._route_burst)
            paces.append(self._routes[route])
        if route in self._extra:
            paces.append(self._extra[route])
        return paces

    def _adaptive(self, route: str) -> _Pace | None:
        """The limit a 429 on `route` speaks of: the route's own tighter one, else the account's."""
        return self._extra.get(route, self._account)

    def acquire(self, route: str, deadline: float = math.inf) -> int:
        """Wait until a request to `route` may go. Returns a ticket for `throttled`: which cut of
        the route's adaptive limit it was sent under. Raises TimeoutError if that would be after
        `deadline` (on the limiter's clock), and the error the run gave up with once it is `close`d."""
        with self._changed:
            own = self._own_paces(route)
            ticket = self._reserve(own, self._extra.get(route), deadline)
            if self._account is not None:
                urgent = not getattr(_fan_out_worker, "active", False)
                account_ticket = self._queue(self._account, urgent, deadline)
                if route not in self._extra:
                    ticket = account_ticket
            sent = self._clock()
            for pace in own:  # a request held up in the account's queue went later than reserved
                pace.tat = max(pace.tat, sent + 1.0 / pace.rate)
            return ticket

    def _reserve(self, paces: list[_Pace], adaptive: _Pace | None, deadline: float) -> int:
        """Reserve the next send time all `paces` allow and wait for it; reserve again if a cut
        of `adaptive` voids the reservation meanwhile (a cut wakes the waiters)."""
        while True:
            now = self._clock()
            at = max((p.earliest(now) for p in paces), default=now)
            if self._closed:
                raise self._closed
            if at > deadline:
                raise TimeoutError
            for pace in paces:
                pace.take(at)
            ticket = adaptive.cuts if adaptive else 0
            while now < at and (adaptive is None or adaptive.cuts == ticket) and not self._closed:
                self._wait(self._changed, at - now)
                now = self._clock()
            if self._closed:
                raise self._closed
            if adaptive is None or adaptive.cuts == ticket:
                return ticket

    def _queue(self, pace: _Pace, urgent: bool, deadline: float) -> int:
        """Wait for a turn in `pace`'s queue, then for the time the pace allows. Only the head of
        the queue watches the clock, without reserving, so a cut or a more urgent request that
        arrives meanwhile changes what it waits for."""
        me = (0 if urgent else 1, next(self._arrivals))
        heapq.heappush(self._waiting, me)
        self._changed.notify_all()  # a more urgent arrival becomes the head
        try:
            while True:
                now = self._clock()
                if self._closed:
                    raise self._closed
                if now >= deadline:
                    raise TimeoutError
                if self._waiting[0] != me:
                    self._wait(self._changed, min(deadline - now, 3600))
                    continue
                at = pace.earliest(now)
                if at <= now:
                    pace.take(now)
                    return pace.cuts
                self._wait(self._changed, min(at, deadline) - now)
        finally:
            self._waiting.remove(me)
            heapq.heapify(self._waiting)
            self._changed.notify_all()  # the next one is the head now

    def close(self, error: Exception) -> None:
        """The run gives up with `error`: every request still waiting for its turn raises it."""
        with self._lock:
            self._closed = error
            self._changed.notify_all()

    def succeeded(self, route: str, ticket: int) -> None:
        """A request (its `acquire` ticket) succeeded: the route's adaptive limit may climb."""
        with self._lock:
            pace = self._adaptive(route)
            if pace is not None:
                pace.succeeded(ticket)

    def throttled(self, route: str, ticket: int, retry_after: float | None = None) -> float:
        """A request (its `acquire` ticket) answered 429: cut the rate and hold every request of
        the account (or of the special route) for `retry_after` seconds, or one interval.
        Returns how long that holds them from now."""
        with self._lock:
            pace = self._adaptive(route)
            if pace is None:
                return 0.0
            now = self._clock()
            if pace.throttled(ticket, now, retry_after):
                self._changed.notify_all()
            return max(0.0, pace.earliest(now) - now)


def _client_burst(api_burst: int, budget_share: float) -> int:
    """The client's burst for an API burst of `api_burst` of which it takes `budget_share`: half
    of it (settings.BURST_SHARE) rounded up, and at least one below it, but never less than 1."""
    granted = api_burst * budget_share
    return max(1, min(math.ceil(granted * settings.BURST_SHARE), math.floor(round(granted, 9)) - 1))


def neon_rate_limiter(
    requests_per_minute: float = settings.REQUESTS_PER_MINUTE,
    budget_share: float = settings.BUDGET_SHARE,
    **timing: Any,
) -> RateLimiter:
    """The limiter for Neon's documented limits, taking `budget_share` of the account's budget
    (pass requests_per_minute=0 to disable it, e.g. for a local simulator without limits).
    `timing` goes to RateLimiter (`clock`, `wait`): a test's fake clock."""
    if not requests_per_minute:
        return RateLimiter(0, 1, 0, 1, {}, **timing)
    return RateLimiter(
        requests_per_minute,
        # the strictest reading of Neon's limit for consumption history: both endpoints share it
        route_limits={
            settings.CONSUMPTION_ROUTES: (
                settings.CONSUMPTION_REQUESTS_PER_MINUTE,
                settings.CONSUMPTION_BURST,
            )
        },
        budget_share=budget_share,
        **timing,
    )


# --------------------------------------------------------------------------------------------- client


@dataclass
class RetryPolicy:
    max_attempts: int = settings.MAX_ATTEMPTS
    backoff_base: float = settings.BACKOFF_BASE_SECONDS
    backoff_max: float = settings.BACKOFF_MAX_SECONDS
    connect_timeout: float = settings.CONNECT_TIMEOUT_SECONDS
    read_timeout: float = settings.READ_TIMEOUT_SECONDS
    max_throttle_wait: float = settings.MAX_THROTTLE_WAIT_SECONDS
    request_deadline: float = settings.REQUEST_DEADLINE_SECONDS
    run_deadline: float = settings.RUN_DEADLINE_SECONDS

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter (attempt counts from 1)."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))


class NeonClient:
    """GET-only client for Neon API v2.

    `get(route, params, **path)` formats the route template (`/projects/{project_id}/branches`)
    and returns the decoded JSON body. The route template is the unit for rate limits and stats.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        key_source: str = "the configured API key",
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        stats: RunStats | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": "neon-elt (dlt)",
        }
        self.key_source = key_source
        # tells a changed key from the same one without keeping the key (the plan's state)
        self.key_fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:16]
        self.limiter = limiter or neon_rate_limiter()
        self.retry = retry or RetryPolicy()
        self.stats = stats or RunStats()
        self.stats.rate_ceiling = self.stats.rate = self.limiter.ceiling_per_minute
        self._local = threading.local()
        self._reached = False  # set once any request got an HTTP answer
        self._run_ends = time.monotonic() + self.retry.run_deadline  # the client is made as a run starts

    @property
    def run_ends(self) -> float:
        """When the run's deadline passes (time.monotonic()): requests end there, and so do the
        steps after them (the runner's RunDeadline)."""
        return self._run_ends

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def get(
        self,
        route: str,
        params: Mapping[str, Any] | None = None,
        validate: Callable[[dict], str | None] | None = None,
        **path: str,
    ) -> dict:
        """GET with retries. `validate(body)` may return a reason to treat a 200 as transient.

        5xx, timeouts, dropped connections and corrupt bodies use up `max_attempts`. A 429 does
        not: the limiter slows the whole account down, and the request waits its turn again,
        until `max_throttle_wait` seconds after its first 429 (refused again, or still waiting
        for its turn)."""
        url = self.base_url + route.format(**path)
        failures = 0  # attempts used up by failures other than 429
        refusals = 0  # 429s in a row
        first_refusal = 0.0
        while True:
            deadline = first_refusal + self.retry.max_throttle_wait if first_refusal else math.inf
            try:
                ticket = self.limiter.acquire(route, min(deadline, self._run_ends))
            except TimeoutError:  # refused, and no turn again within the wait (or the run's end)
                if time.monotonic() >= self._run_ends or deadline > self._run_ends:
                    self._give_up(NeonDeadline(route, self.retry.run_deadline))
                self._give_up(NeonThrottled(route, time.monotonic() - first_refusal, refusals))
            if time.monotonic() >= self._run_ends:
                self._give_up(NeonDeadline(route, self.retry.run_deadline))
            self.stats.count_request(route)
            try:
                body = self._attempt(route, url, params, validate)
            except _Transient as transient:
                if transient.status == 429:
                    refusals += 1
                    now = time.monotonic()
                    first_refusal = first_refusal or now
                    held = self.limiter.throttled(route, ticket, transient.retry_after)
                    self._note_rate()
                    if now - first_refusal >= self.retry.max_throttle_wait:
                        self._give_up(NeonThrottled(route, now - first_refusal, refusals))
                    # the limiter holds the whole account now; without one, back off
                    delay = transient.retry_after
                    if delay is None:
                        delay = 0.0 if self.limiter.enabled else self.retry.backoff(refusals)
                    self.stats.pause(max(held, delay))
                else:
                    refusals = 0
                    failures += 1
                    if failures >= self.retry.max_attempts:
                        raise NeonAPIError(
                            route, transient.status, transient.detail, attempts=failures
                        ) from None
                    delay = self.retry.backoff(failures)
                self.stats.add(retries=1)
                time.sleep(max(0.0, min(delay, self._run_ends - time.monotonic())))
                continue
            self.limiter.succeeded(route, ticket)
            self._note_rate()
            return body

    def _give_up(self, error: NeonAPIError) -> None:
        """The run ends: no other request keeps waiting for a turn at a rate Neon does not grant."""
        self.limiter.close(error)
        raise error from None

    def _note_rate(self) -> None:
        self.stats.rate = self.limiter.rate_per_minute

    def _attempt(self, route, url, params, validate) -> dict:
        sent = time.monotonic()
        ends = min(sent + self.retry.request_deadline, self._run_ends)
        try:
            response = self._session().get(
                url,
                params=params,
                timeout=(self.retry.connect_timeout, min(self.retry.read_timeout, ends - sent)),
                stream=True,
            )
            body_text = self._read_body(route, response, ends)
        except requests.exceptions.ConnectionError as exc:
            self._check_deadline(route, ends)
            if not self._reached and _is_refused(exc):
                # Before the API ever answered, a refused connection or unknown host is a wrong
                # base URL, not a blip: say so at once instead of backing off for a minute.
                raise NeonAPIError(
                    route, None, f"cannot connect to {self.base_url} ({_root_cause(exc)})"
                ) from None
            raise _Transient(None, f"connection failed: {_root_cause(exc)}") from None
        except requests.exceptions.Timeout:
            self._check_deadline(route, ends)
            raise _Transient(None, f"no answer within {self.retry.read_timeout:g} s") from None
        except requests.exceptions.RequestException as exc:  # truncated bodies, broken chunking
            self._check_deadline(route, ends)
            raise _Transient(None, f"response broken off: {_root_cause(exc)}") from None

        first_answer, self._reached = not self._reached, True
        status = response.status_code
        if status == 200:
            try:
                body = json.loads(body_text)
            except ValueError:
                kind = response.headers.get("Content-Type", "unknown content type")
                raise _Transient(
                    200,
                    f"the body is not valid JSON ({kind}, {len(body_text)} bytes); is {self.base_url} "
                    "the Neon API?",
                ) from None
            if not isinstance(body, dict) and not (
                isinstance(body, list) and route in settings.ARRAY_BODY_ROUTES
            ):
                raise _Transient(200, "the body is JSON but not an object")
            reason = validate(body) if validate else None
            if reason:
                raise _Transient(200, reason)
            return body

        message = _error_message(body_text)
        if status == 401:
            raise NeonAuthError(route, 401, f"Neon rejected the API key from {self.key_source}: {message}")
        if status == 403:
            raise NeonForbidden(route, 403, message)
        if status == 404:
            path = urlsplit(self.base_url).path.rstrip("/")
            if first_answer and not path.endswith("/api/v2"):
                raise NeonSetupError(
                    route,
                    404,
                    f"{message}; Neon's API lives under /api/v2: is the base URL {self.base_url}/api/v2?",
                )
            raise NeonNotFound(route, 404, message)
        if status == 429:
            self.stats.add(throttled=1)
            raise _Transient(429, message, _retry_after(response.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise _Transient(status, message)
        raise NeonAPIError(route, status, message)

    def _read_body(self, route: str, response: requests.Response, ends: float) -> str:
        """The body as text, read in chunks until `ends` (a read timeout bounds each read only:
        a server trickling its answer a byte at a time would hold the request forever)."""
        chunks = []
        try:
            # read1: what has arrived, at most one system call (iter_content waits for whole chunks)
            while chunk := response.raw.read1(64 * 1024, decode_content=True):
                chunks.append(chunk)
                if time.monotonic() >= ends:
                    self._check_deadline(route, ends)
        except urllib3.exceptions.ReadTimeoutError as exc:  # as requests itself maps urllib3's errors
            response.close()
            raise requests.exceptions.ReadTimeout(exc) from exc
        except urllib3.exceptions.HTTPError as exc:  # a body cut short, a broken chunk or encoding
            response.close()
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except BaseException:
            response.close()  # a connection left mid-body is never reused
            raise
        response._content = b"".join(chunks)  # as requests keeps a body it read itself
        return response.text

    def _check_deadline(self, route: str, ends: float) -> None:
        """End a request past its deadline: the run's (for good) or its own (a retry)."""
        now = time.monotonic()
        if now >= self._run_ends:
            self._give_up(NeonDeadline(route, self.retry.run_deadline))
        if now >= ends:
            raise _Transient(
                None,
                f"no complete answer within {self.retry.request_deadline:g} s (request_deadline_seconds)",
            )


# Neon is never on this machine: an API on the loopback host is the simulator (neon_simulator).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def origin_of(base_url: str) -> str:
    """Which API a base URL reaches. Ports on the loopback host are ignored, so every local
    simulator counts as one origin."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host if host in LOOPBACK_HOSTS else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_local(origin: str) -> bool:
    """Whether an origin (or base URL) is on the loopback host: the simulator, not Neon."""
    return urlsplit(origin).hostname in LOOPBACK_HOSTS


def _error_message(body_text: str) -> str:
    """Neon's GeneralError message, or the start of whatever came back, as one printable line of
    at most ERROR_TEXT_CHARS: a server's text reaches a terminal or a log."""
    try:
        body = json.loads(body_text)
        if isinstance(body, dict) and body.get("message"):
            return one_line(str(body["message"]), settings.ERROR_TEXT_CHARS)
    except ValueError:
        pass
    return one_line(body_text, settings.ERROR_TEXT_CHARS) or "(empty body)"


_ANSI_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?")


def one_line(text: str, limit: int) -> str:
    """`text` as one printable line of at most `limit` characters: terminal escape sequences and
    other control characters removed, whitespace runs made one space, the rest cut with an ellipsis."""
    text = _ANSI_ESCAPE.sub("", text[: limit * 4])
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header; anything that is not a duration of 0 or more
    seconds (a date, `nan`, `-5`) counts as absent, and the run backs off as without one."""
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, settings.BACKOFF_MAX_SECONDS * 4)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it (`raise ... from`) or was being handled when it was raised, and
    so on down to the innermost one; each once, even where a chain loops back on itself. Every
    walk down a chain (the cause to print, an interrupt or a fault of the machine to find) is this."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def innermost(exc: BaseException) -> BaseException:
    """The last exception of the chain: usually the one that says what actually went wrong."""
    *_, last = exception_chain(exc)
    return last


def _root_cause(exc: BaseException) -> str:
    exc = innermost(exc)
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def _is_refused(exc: BaseException) -> bool:
    """Name resolution failures and refused connections do not heal within a run."""
    text = str(exc)
    return any(
        marker in text
        for marker in ("Connection refused", "Name or service not known", "nodename nor servname")
    )


# ----------------------------------------------------------------------------------------- pagination


def paginate_cursor(
    client: NeonClient,
    route: str,
    items_key: str,
    params: Mapping[str, Any],
    validate: Callable[[dict], str | None] | None = None,
    convert: Callable[[list[dict]], Any] | None = None,
    **path: str,
) -> Iterator[Any]:
    """`pagination.cursor` paging (projects, operations, consumption).

    Neon always returns a cursor, also after the last page, so a page without items ends the
    listing; a cursor seen before is an error rather than an endless loop. With `convert`, each
    page is yielded converted (consumption: to an Arrow table), and the page's dicts are freed
    before the caller gets it rather than held while the caller works on the next one.
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_params = dict(params, cursor=cursor) if cursor else dict(params)
        body = client.get(route, page_params, validate, **path)
        items = body.get(items_key) or []
        if not items:
            return
        cursor = (body.get("pagination") or {}).get("cursor")
        page = convert(items) if convert else items
        del body, items
        yield page
        del page
        if not cursor:
            return
        if cursor in seen:
            raise PaginationError(route, 200, f"the API repeated cursor {cursor!r}")
        seen.add(cursor)


def paginate_next(
    client: NeonClient, route: str, items_key: str, params: Mapping[str, Any], **path: str
) -> Iterator[list[dict]]:
    """`pagination.next` paging (branches): the API sends `next` only while more remain."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_params = dict(params, cursor=cursor) if cursor else dict(params)
        body = client.get(route, page_params, **path)
        items = body.get(items_key) or []
        if items:
            yield items
        cursor = (body.get("pagination") or {}).get("next")
        if not cursor or not items:
            return
        if cursor in seen:
            raise PaginationError(route, 200, f"the API repeated cursor {cursor!r}")
        seen.add(cursor)


# ----------------------------------------------------------------------------------------- concurrency


_fan_out_worker = threading.local()


def _mark_worker() -> None:
    """Tell the rate limiter this thread is one of many interchangeable workers (see RateLimiter)."""
    _fan_out_worker.active = True


def fan_out(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """Run `fn` over `items` on `workers` threads and yield results as they complete.

    At most two tasks per worker are in flight, so memory stays flat however long `items` is.
    The first exception cancels what has not started and propagates.
    """
    pool = ThreadPoolExecutor(
        max_workers=max(1, workers), thread_name_prefix="neon", initializer=_mark_worker
    )
    pending: set = set()
    try:
        for item in items:
            pending.add(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------ shaping


def scrub(value: Any) -> Any:
    """Drop credential-bearing keys at any depth (role passwords, connection URIs)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k.lower() not in settings.CREDENTIAL_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def pick(record: Mapping[str, Any], columns: Mapping[str, str]) -> dict:
    """The record's values for `columns`, scrubbed; absent fields stay absent (the column hints
    create them as NULL)."""
    return {name: scrub(record[name]) for name in columns if name in record}


# When the API last returned a row: carried rows keep theirs (incremental runs).
CONFIRMED_AT_HINT = {"confirmed_at": {"data_type": "timestamp", "nullable": False}}


def column_hints(columns: Mapping[str, str], nullable_except: Iterable[str] = ()) -> dict:
    """dlt column hints for a table shape: every declared column exists even when the API omits
    the field on every row of a run."""
    required = set(nullable_except)
    return {
        name: {"data_type": data_type, "nullable": name not in required}
        for name, data_type in columns.items()
    }
