"""The client-side rate limiter: one for the whole source, shaped like Neon's limits (an account
rate and burst, a per-route rate, the consumption routes' own budget), that halves on a 429 and
climbs back as requests succeed (settings.py has the numbers and why)."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import listings, settings

# The threads of `reading.fan_out`: interchangeable workers, which the limiter serves in turn.
_fan_out_worker = threading.local()


def mark_worker() -> None:
    """Tell the rate limiter this thread is one of many interchangeable workers (see RateLimiter)."""
    _fan_out_worker.active = True


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
            listings.CONSUMPTION_ROUTES: (
                settings.CONSUMPTION_REQUESTS_PER_MINUTE,
                settings.CONSUMPTION_BURST,
            )
        },
        budget_share=budget_share,
        **timing,
    )
