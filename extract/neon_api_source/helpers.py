"""HTTP mechanics for the Neon API source: the errors, the run's statistics, and the one client
(with its retry policy) every resource shares; its rate limiter is limiter.py, paging reading.py."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import listings, settings
from .limiter import RateLimiter, neon_rate_limiter

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
        config: Any = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.config = config  # the settings it was made from (configuration.make_client): the source's too
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
                isinstance(body, list) and route in listings.ARRAY_BODY_ROUTES
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


def is_loopback(host: str | None) -> bool:
    """Whether a host is this machine: "localhost" or any loopback address (127.0.0.0/8, ::1).
    Neon is never on this machine: an API there is the simulator (neon_simulator) or a local
    proxy, and plain http to it never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def origin_of(base_url: str) -> str:
    """Which API a base URL reaches. Ports on the loopback host are ignored, so every local
    simulator counts as one origin."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = host if is_loopback(host) else parts.netloc
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def is_local(origin: str) -> bool:
    """Whether an origin (or base URL) is on the loopback host: the simulator, not Neon."""
    return is_loopback(urlsplit(origin).hostname)


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
