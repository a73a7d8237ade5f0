"""Neon's documented API rate limits, enforced with thread-safe token buckets.

Neon documents 700 requests per minute per account, bursts of up to 40 requests per second per
route, and HTTP 429 without a ``Retry-After`` header when a limit is exceeded. The consumption
history endpoint has its own, tighter limit of about 30 requests per minute.

A request is admitted only if every bucket that applies to it (the account's, its route's and, for
consumption, the consumption bucket) holds a whole token; then each gives one. A refused request
takes nothing, so a client that backs off recovers at the documented rates.

:class:`RateLimits` carries the numbers, so a client-side limiter can be configured identically,
and :meth:`RateLimits.floor_seconds` gives the least time any client needs for N requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CONSUMPTION_ROUTE = "/consumption_history/v2/projects"


@dataclass(frozen=True)
class RateLimits:
    """Token-bucket parameters: ``*_rate`` in requests per second, ``*_burst`` = bucket capacity.

    The defaults are Neon's documented limits (see :meth:`neon`). ``consumption_routes`` lists the
    route templates that also draw from the consumption bucket.
    """

    account_rate: float = 700 / 60
    account_burst: int = 40
    route_rate: float = 40.0
    route_burst: int = 40
    consumption_rate: float = 30 / 60
    consumption_burst: int = 5
    consumption_routes: tuple[str, ...] = (CONSUMPTION_ROUTE,)

    def __post_init__(self):
        for name in ("account", "route", "consumption"):
            if getattr(self, f"{name}_rate") <= 0 or getattr(self, f"{name}_burst") < 1:
                raise ValueError(f"{name}_rate must be > 0 and {name}_burst >= 1")

    @classmethod
    def neon(cls) -> RateLimits:
        """Neon's documented limits: 700/min per account (burst 40), 40/s per route, 30/min consumption."""
        return cls()

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


class RateLimiter:
    """Thread-safe admission control for one account under :class:`RateLimits`."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._account = TokenBucket(limits.account_rate, limits.account_burst, now)
        self._consumption = TokenBucket(limits.consumption_rate, limits.consumption_burst, now)
        self._routes: dict[str, TokenBucket] = {}

    def try_acquire(self, route: str) -> bool:
        """Admit one request to ``route`` (a route template) if every applicable bucket has a token."""
        with self._lock:
            now = self._clock()
            route_bucket = self._routes.get(route)
            if route_bucket is None:
                route_bucket = TokenBucket(self.limits.route_rate, self.limits.route_burst, now)
                self._routes[route] = route_bucket
            buckets = [self._account, route_bucket]
            if route in self.limits.consumption_routes:
                buckets.append(self._consumption)
            for bucket in buckets:
                bucket.refill(now)
            if any(bucket.tokens < 1 for bucket in buckets):
                return False
            for bucket in buckets:
                bucket.tokens -= 1
            return True
