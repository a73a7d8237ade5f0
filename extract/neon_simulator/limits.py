"""Neon's documented API rate limits, enforced strictly: thread-safe token buckets for the account
and for consumption, and a sliding window per route.

Neon documents 700 requests per minute per account, bursts of up to 40 requests per second per
route, and HTTP 429 without a ``Retry-After`` header when a limit is exceeded. The consumption
history endpoint has its own, tighter limit of about 30 requests per minute.

A request is admitted only if every limit that applies to it has room: the account's bucket, its
route's window and, for consumption, the consumption bucket. Then each takes one. A refused
request takes nothing, so a client that backs off recovers at the documented rates.

The route limit is a sliding window, at most ``route_burst`` requests in any ``route_burst /
route_rate`` seconds (40 in any second, for Neon). That is at least as strict as any reading of
"40 requests per second per route": a token bucket with the same numbers would also admit a full
burst and then a second's refill within one second.

:class:`RateLimits` carries the numbers, so a client-side limiter can be configured identically;
:meth:`RateLimits.scaled` grants only a share of the account's budget (the rest being used by
other tools), :meth:`RateLimits.dropping` switches to a share after some requests (another tool
starting mid-run), and :meth:`RateLimits.floor_seconds` gives the least time any client needs
for N requests.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from neon_api_source import listings


@dataclass(frozen=True)
class RateLimits:
    """Limit parameters: ``*_rate`` in requests per second, ``*_burst`` = bucket (or window) size.

    The defaults are Neon's documented limits (see :meth:`neon`). ``consumption_routes`` lists the
    route templates that also draw from the consumption bucket. With ``drop_after`` set, the
    limiter grants only ``scaled(drop_to, drop_routes)`` once it has seen that many requests.
    """

    account_rate: float = 700 / 60
    account_burst: int = 40
    route_rate: float = 40.0
    route_burst: int = 40
    consumption_rate: float = 30 / 60
    consumption_burst: int = 5
    # one budget for both consumption endpoints: the strictest reading of Neon's documented limit
    consumption_routes: tuple[str, ...] = listings.CONSUMPTION_ROUTES
    drop_after: int | None = None
    drop_to: float = 1.0
    drop_routes: bool = False

    def __post_init__(self):
        for name in ("account", "route", "consumption"):
            if getattr(self, f"{name}_rate") <= 0 or getattr(self, f"{name}_burst") < 1:
                raise ValueError(f"{name}_rate must be > 0 and {name}_burst >= 1")
        if not 0 < self.drop_to <= 1 or (self.drop_after is not None and self.drop_after < 0):
            raise ValueError("drop_to must be within (0, 1] and drop_after >= 0")

    @classmethod
    def neon(cls) -> RateLimits:
        """Neon's documented limits: 700/min per account (burst 40), 40/s per route, 30/min consumption."""
        return cls()

    def scaled(self, share: float, routes: bool = False) -> RateLimits:
        """These limits with the account's rate and burst multiplied by ``share`` (the burst
        rounded down, at least 1): what one tool gets when others use the rest of the account's
        budget. ``RateLimits.neon().scaled(0.3)`` is 210/min with a burst of 12. With ``routes``
        the per-route and consumption limits shrink too, as if the other tools read the same
        routes."""
        if share <= 0:
            raise ValueError("share must be > 0")
        names = ("account", "route", "consumption") if routes else ("account",)
        return dataclasses.replace(
            self,
            **{
                f"{name}_{kind}": (
                    getattr(self, f"{name}_rate") * share
                    if kind == "rate"
                    else max(1, math.floor(round(getattr(self, f"{name}_burst") * share, 9)))
                )
                for name in names
                for kind in ("rate", "burst")
            },
            drop_after=None,
            drop_to=1.0,
            drop_routes=False,
        )

    def dropping(self, after: int, to: float, routes: bool = False) -> RateLimits:
        """These limits for the first ``after`` requests, then ``scaled(to, routes)``: another
        tool starts drawing on the same account mid-run."""
        return dataclasses.replace(self, drop_after=after, drop_to=to, drop_routes=routes)

    def floor_seconds(self, requests: int, consumption_requests: int = 0) -> float:
        """The least wall time in which any client can make ``requests`` requests without a 429.

        ``consumption_requests`` of them go to the consumption endpoint. With full buckets at the
        start, the account bucket allows ``(N - burst) / rate`` seconds at best, and the
        consumption bucket ``(C - consumption_burst) / consumption_rate``; the larger one wins.
        """
        account = max(0.0, (requests - self.account_burst) / self.account_rate)
        consumption = max(0.0, (consumption_requests - self.consumption_burst) / self.consumption_rate)
        return max(account, consumption)


class TokenBucket:
    """A token bucket: ``capacity`` tokens, refilled continuously at ``rate`` per second.

    Not locked on its own; :class:`RateLimiter` serialises access.
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: int, now: float):
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill, up to the capacity."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def has_room(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= 1

    def take(self, now: float) -> None:
        self.tokens -= 1

    def resize(self, rate: float, capacity: int, now: float) -> None:
        """New numbers; the tokens held so far stay, up to the new capacity."""
        self.refill(now)
        self.rate, self.capacity = rate, float(capacity)
        self.tokens = min(self.tokens, self.capacity)


class SlidingWindow:
    """At most ``capacity`` admissions in any ``seconds``-long window. Not locked on its own."""

    __slots__ = ("capacity", "seconds", "times")

    def __init__(self, rate: float, capacity: int, now: float):
        self.capacity = capacity
        self.seconds = capacity / rate
        self.times: deque[float] = deque()

    def has_room(self, now: float) -> bool:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return len(self.times) < self.capacity

    def take(self, now: float) -> None:
        self.times.append(now)

    def resize(self, rate: float, capacity: int, now: float) -> None:
        self.capacity, self.seconds = capacity, capacity / rate


class RateLimiter:
    """Thread-safe admission control for one account under :class:`RateLimits`."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = 0
        now = clock()
        self._account = TokenBucket(limits.account_rate, limits.account_burst, now)
        self._consumption = TokenBucket(limits.consumption_rate, limits.consumption_burst, now)
        self._routes: dict[str, SlidingWindow] = {}
        self._granted = limits  # the numbers in force now

    def try_acquire(self, route: str) -> bool:
        """Admit one request to ``route`` (a route template) if every applicable limit has room."""
        with self._lock:
            now = self._clock()
            self._seen += 1
            if self.limits.drop_after is not None and self._seen == self.limits.drop_after + 1:
                self._drop(now)
            route_window = self._routes.get(route)
            if route_window is None:
                route_window = SlidingWindow(self._granted.route_rate, self._granted.route_burst, now)
                self._routes[route] = route_window
            limits = [self._account, route_window]
            if route in self.limits.consumption_routes:
                limits.append(self._consumption)
            if not all([limit.has_room(now) for limit in limits]):
                return False
            for limit in limits:
                limit.take(now)
            return True

    def _drop(self, now: float) -> None:
        granted = self._granted = self.limits.scaled(self.limits.drop_to, self.limits.drop_routes)
        self._account.resize(granted.account_rate, granted.account_burst, now)
        self._consumption.resize(granted.consumption_rate, granted.consumption_burst, now)
        for window in self._routes.values():
            window.resize(granted.route_rate, granted.route_burst, now)
