"""HTTP mechanics for the Neon API source: one client, one rate limiter, one retry policy and one
pagination helper per pagination scheme, shared by every resource."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from . import settings

CONSUMPTION_ROUTE = "/consumption_history/v2/projects"


# --------------------------------------------------------------------------------------------- errors


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


class NeonAuthError(NeonAPIError):
    """401: the key is wrong, revoked or missing. Never retried."""


class NeonForbidden(NeonAPIError):
    """403: the key may not read this endpoint (plan, permission or key type)."""


class NeonNotFound(NeonAPIError):
    """404: the object is gone, typically deleted between the listing and this request."""


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
    """Counters for the run summary. Thread-safe through `add`."""

    requests: Counter = field(default_factory=Counter)  # per route template
    rows: Counter = field(default_factory=Counter)  # per table
    retries: int = 0
    throttled: int = 0  # 429 answers received
    skipped_404: int = 0
    skipped_optional: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: Any = None  # the incremental plan (incremental.Plan) once the run has decided it
    started: float = field(default_factory=time.monotonic)
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

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


# -------------------------------------------------------------------------------------- rate limiting


class _Bucket:
    """Generic cell rate algorithm: `rate` requests per second with bursts of `burst`."""

    __slots__ = ("interval", "tolerance", "tat")

    def __init__(self, rate: float, burst: int):
        self.interval = 1.0 / rate
        burst = max(1, burst - settings.BURST_MARGIN)
        self.tolerance = (burst - 1) * self.interval
        self.tat = 0.0  # theoretical arrival time of the next conforming request

    def earliest(self, now: float) -> float:
        return max(now, self.tat - self.tolerance)

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + self.interval


class RateLimiter:
    """One limiter for the whole account, shaped like Neon's limits: a sustained rate per account
    with a burst allowance, a per-route rate, and optional tighter limits for particular routes.

    `acquire` reserves a send time under a lock and sleeps outside it, so concurrent workers are
    served in order and never stampede. A 429 pushes the whole account back (`penalize`), so every
    worker pauses, not only the one that was throttled. A rate of 0 disables a limit.
    """

    def __init__(
        self,
        requests_per_minute: float = settings.REQUESTS_PER_MINUTE,
        burst: int = settings.ACCOUNT_BURST,
        route_requests_per_second: float = settings.ROUTE_REQUESTS_PER_SECOND,
        route_burst: int = settings.ROUTE_BURST,
        route_limits: Mapping[str, tuple[float, int]] | None = None,
        safety: float = settings.RATE_SAFETY,
    ):
        self._lock = threading.Lock()
        self._account = _Bucket(requests_per_minute / 60 * safety, burst) if requests_per_minute else None
        self._route_rate = route_requests_per_second * safety
        self._route_burst = route_burst
        self._routes: dict[str, _Bucket] = {}
        self._extra = {
            route: _Bucket(per_minute / 60 * safety, extra_burst)
            for route, (per_minute, extra_burst) in (route_limits or {}).items()
            if per_minute
        }

    def _buckets(self, route: str) -> list[_Bucket]:
        buckets = [self._account] if self._account else []
        if self._route_rate:
            if route not in self._routes:
                self._routes[route] = _Bucket(self._route_rate, self._route_burst)
            buckets.append(self._routes[route])
        if route in self._extra:
            buckets.append(self._extra[route])
        return buckets

    def acquire(self, route: str) -> None:
        with self._lock:
            now = time.monotonic()
            buckets = self._buckets(route)
            at = max((b.earliest(now) for b in buckets), default=now)
            for bucket in buckets:
                bucket.take(at)
        if at > now:
            time.sleep(at - now)

    def penalize(self, seconds: float, route: str | None = None) -> None:
        """Hold every request (or a route's) for `seconds`, then restart without a burst."""
        with self._lock:
            until = time.monotonic() + seconds
            buckets = [self._extra[route]] if route in self._extra else [self._account]
            for bucket in filter(None, buckets):
                bucket.tat = max(bucket.tat, until + bucket.tolerance)


def neon_rate_limiter(requests_per_minute: float = settings.REQUESTS_PER_MINUTE) -> RateLimiter:
    """The limiter for Neon's documented limits (pass 0 to disable, e.g. for a local simulator)."""
    if not requests_per_minute:
        return RateLimiter(0, 1, 0, 1, {})
    return RateLimiter(
        requests_per_minute,
        route_limits={
            CONSUMPTION_ROUTE: (settings.CONSUMPTION_REQUESTS_PER_MINUTE, settings.CONSUMPTION_BURST)
        },
    )


# --------------------------------------------------------------------------------------------- client


@dataclass
class RetryPolicy:
    max_attempts: int = settings.MAX_ATTEMPTS
    backoff_base: float = settings.BACKOFF_BASE_SECONDS
    backoff_max: float = settings.BACKOFF_MAX_SECONDS
    connect_timeout: float = settings.CONNECT_TIMEOUT_SECONDS
    read_timeout: float = settings.READ_TIMEOUT_SECONDS

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
        self._local = threading.local()
        self._reached = False  # set once any request got an HTTP answer

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
        """GET with retries. `validate(body)` may return a reason to treat a 200 as transient."""
        url = self.base_url + route.format(**path)
        last: _Transient | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if attempt > 1:
                self.stats.add(retries=1)
                delay = self.retry.backoff(attempt - 1)
                if last is not None and last.retry_after is not None:
                    delay = max(delay, last.retry_after)
                if last is not None and last.status == 429:
                    self.limiter.penalize(delay, route)
                time.sleep(delay)
            self.limiter.acquire(route)
            self.stats.count_request(route)
            try:
                return self._attempt(route, url, params, validate)
            except _Transient as transient:
                last = transient
        assert last is not None
        raise NeonAPIError(route, last.status, last.detail, attempts=self.retry.max_attempts)

    def _attempt(self, route, url, params, validate) -> dict:
        try:
            response = self._session().get(
                url, params=params, timeout=(self.retry.connect_timeout, self.retry.read_timeout)
            )
            body_text = response.text
        except requests.exceptions.ConnectionError as exc:
            if not self._reached and _is_refused(exc):
                # Before the API ever answered, a refused connection or unknown host is a wrong
                # base URL, not a blip: say so at once instead of backing off for a minute.
                raise NeonAPIError(
                    route, None, f"cannot connect to {self.base_url} ({_root_cause(exc)})"
                ) from None
            raise _Transient(None, f"connection failed: {_root_cause(exc)}") from None
        except requests.exceptions.Timeout:
            raise _Transient(None, f"no answer within {self.retry.read_timeout:g} s") from None
        except requests.exceptions.RequestException as exc:  # truncated bodies, broken chunking
            raise _Transient(None, f"response broken off: {_root_cause(exc)}") from None

        self._reached = True
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
            raise NeonNotFound(route, 404, message)
        if status == 429:
            self.stats.add(throttled=1)
            raise _Transient(429, message, _retry_after(response.headers.get("Retry-After")))
        if status >= 500 or status == 408:
            raise _Transient(status, message)
        raise NeonAPIError(route, status, message)


def origin_of(base_url: str) -> str:
    """Which API a base URL reaches. Ports on the loopback host are ignored, so every local
    simulator counts as one origin."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host if host in ("127.0.0.1", "localhost", "::1") else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _error_message(body_text: str) -> str:
    """Neon's GeneralError message, or the start of whatever came back."""
    try:
        body = json.loads(body_text)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    snippet = " ".join(body_text.split())[:120]
    return snippet or "(empty body)"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(float(value), settings.BACKOFF_MAX_SECONDS * 4)
    except ValueError:
        return None


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
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
    **path: str,
) -> Iterator[list[dict]]:
    """`pagination.cursor` paging (projects, operations, consumption).

    Neon always returns a cursor, also after the last page, so a page without items ends the
    listing; a cursor seen before is an error rather than an endless loop.
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_params = dict(params, cursor=cursor) if cursor else dict(params)
        body = client.get(route, page_params, validate, **path)
        items = body.get(items_key) or []
        if not items:
            return
        yield items
        cursor = (body.get("pagination") or {}).get("cursor")
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


def fan_out(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """Run `fn` over `items` on `workers` threads and yield results as they complete.

    At most two tasks per worker are in flight, so memory stays flat however long `items` is.
    The first exception cancels what has not started and propagates.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="neon")
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


def column_hints(columns: Mapping[str, str], nullable_except: Iterable[str] = ()) -> dict:
    """dlt column hints for a table shape: every declared column exists even when the API omits
    the field on every row of a run."""
    required = set(nullable_except)
    return {
        name: {"data_type": data_type, "nullable": name not in required}
        for name, data_type in columns.items()
    }
