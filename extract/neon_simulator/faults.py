"""Fault injection: the ways a real API and the network between fail, on demand and deterministically.

Per request, one uniform draw from a generator seeded with :attr:`Faults.seed` picks at most one
fault, with each kind's rate as its share of all requests (``error_rate=0.1`` = 10 % of requests
answer 5xx). Draws happen in arrival order, so a sequential client sees the same faults on every
run. Kinds:

- ``error``: 500 or 503 ``GeneralError``.
- ``drop``: the connection is closed without any response.
- ``slow``: the answer comes only after ``slow_seconds`` (past a client's read timeout).
- ``truncate``: status 200, but either the body is cut short of its ``Content-Length`` and the
  connection closed, or a complete response whose JSON body is cut in half.
- ``burst_429``: 429 ``GeneralError``, with ``Retry-After: <retry_after>`` when that is set
  (Neon itself sends none).
- ``not_json``: status 200 with an HTML page (``Content-Type: text/html``).

Two deterministic, non-random faults exist too: ``persistent`` maps a route template (e.g.
``/projects/{project_id}/endpoints``) or a concrete path (``/projects/<id>/endpoints``, without the
``/api/v2`` prefix) to a status that every matching request gets, a fault that outlasts any retry;
``trickle`` maps a route template or concrete path to seconds between bytes: every matching
request gets status 200 and its whole ``Content-Length``, then the body one byte at a time (a server
that never stalls long enough for a per-read timeout, yet never finishes); and
``delete_project_after_list`` deletes a project (by id, or the first N listed) right after
``GET /projects`` has listed it, so its child requests answer 404.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

#: Randomly drawn fault kinds, in the order their rates are stacked on the unit interval.
FAULT_KINDS: tuple[str, ...] = ("error", "drop", "slow", "truncate", "burst_429", "not_json")
#: How :meth:`Faults.mixed` splits one overall rate among the kinds a robust client must survive.
_MIXED_SHARES = {"error": 0.4, "burst_429": 0.3, "drop": 0.15, "truncate": 0.15}
_ENV_PREFIX = "NEON_SIM_"


@dataclass(frozen=True)
class Faults:
    """Fault configuration; everything is off by default."""

    seed: int = 0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 30.0
    truncate_rate: float = 0.0
    burst_429_rate: float = 0.0
    retry_after: int | None = None
    not_json_rate: float = 0.0
    delete_project_after_list: str | int | None = None
    persistent: Mapping[str, int] = field(default_factory=dict)
    trickle: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        rates = [getattr(self, f"{kind}_rate") for kind in FAULT_KINDS]
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1 + 1e-9:
            raise ValueError("fault rates must be within 0..1 and add up to at most 1")
        if any(not 400 <= status <= 599 for status in self.persistent.values()):
            raise ValueError("persistent fault statuses must be HTTP error codes (400..599)")
        if any(not seconds > 0 for seconds in self.trickle.values()):
            raise ValueError("trickle intervals must be more than 0 seconds")
        if self.slow_seconds < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("slow_seconds and retry_after must be >= 0")

    @property
    def enabled(self) -> bool:
        """Whether any fault can happen at all."""
        return bool(
            self.total_rate or self.persistent or self.trickle or self.delete_project_after_list is not None
        )

    @property
    def total_rate(self) -> float:
        """The share of requests that get a random fault."""
        return sum(getattr(self, f"{kind}_rate") for kind in FAULT_KINDS)

    @classmethod
    def mixed(cls, rate: float, **options) -> Faults:
        """``rate`` of all requests fail: 40 % of them 5xx, 30 % 429, 15 % dropped, 15 % truncated."""
        rates = {f"{kind}_rate": rate * share for kind, share in _MIXED_SHARES.items()}
        return cls(**{**rates, **options})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """Read ``NEON_SIM_<FIELD>`` variables (e.g. ``NEON_SIM_ERROR_RATE=0.1``).

        Also ``NEON_SIM_FAULT_RATE`` (as :meth:`mixed`), ``NEON_SIM_FAULT_SEED``, and
        ``NEON_SIM_PERSISTENT="/projects/{project_id}/endpoints=503,..."``,
        ``NEON_SIM_TRICKLE="/projects/{project_id}/branches=20,..."`` (seconds between bytes).
        ``NEON_SIM_DELETE_PROJECT_AFTER_LIST`` is a project id or, if all digits, a count.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        if f"{_ENV_PREFIX}FAULT_RATE" in env:
            mixed = cls.mixed(float(env[f"{_ENV_PREFIX}FAULT_RATE"]))
            values.update({f"{kind}_rate": getattr(mixed, f"{kind}_rate") for kind in FAULT_KINDS})
        if f"{_ENV_PREFIX}FAULT_SEED" in env:
            values["seed"] = int(env[f"{_ENV_PREFIX}FAULT_SEED"])
        for spec_field in fields(cls):
            raw = env.get(_ENV_PREFIX + spec_field.name.upper())
            if raw is None or spec_field.name == "seed":
                continue
            values[spec_field.name] = _parse_field(spec_field.name, raw)
        return cls(**values)


def _parse_field(name: str, raw: str):
    """Convert one environment or command-line value to the type of the :class:`Faults` field."""
    if name in ("persistent", "trickle"):
        items = parse_persistent(item for item in raw.split(",") if item.strip())
        return items if name == "persistent" else {route: float(n) for route, n in items.items()}
    if name == "delete_project_after_list":
        return int(raw) if raw.isdigit() else raw
    if name == "retry_after":
        return int(raw)
    return float(raw)


def parse_persistent(items: Iterable[str]) -> dict[str, int]:
    """Parse ``ROUTE=STATUS`` items into the :attr:`Faults.persistent` mapping (``ROUTE=SECONDS``
    for :attr:`Faults.trickle`, whole seconds)."""
    result = {}
    for item in items:
        route, sep, status = item.strip().rpartition("=")
        if not sep or not route:
            raise ValueError(f"expected ROUTE=STATUS, got {item!r}")
        result[route] = int(status)
    return result


class FaultInjector:
    """The run-time side of :class:`Faults`: a seeded generator and bookkeeping, thread-safe."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._listed: set[str] = set()
        self._deleted = 0
        stacked, total = [], 0.0
        for kind in FAULT_KINDS:
            rate = getattr(faults, f"{kind}_rate")
            if rate:
                total += rate
                stacked.append((total, kind))
        self._stacked = stacked

    def draw(self) -> str | None:
        """The random fault for the next request, or ``None``."""
        if not self._stacked:
            return None
        with self._lock:
            roll = self._rng.random()
        for bound, kind in self._stacked:
            if roll < bound:
                return kind
        return None

    def choose(self, options: tuple):
        """A seeded choice among ``options`` (e.g. 500 or 503), in arrival order like :meth:`draw`."""
        with self._lock:
            return self._rng.choice(options)

    def persistent_status(self, template: str, path: str) -> int | None:
        """The persistent status configured for this route template or concrete path, if any."""
        persistent = self.faults.persistent
        return persistent.get(path, persistent.get(template))

    def trickle_interval(self, template: str, path: str) -> float | None:
        """Seconds between the bytes of this route's bodies, if it trickles."""
        trickle = self.faults.trickle
        return trickle.get(path, trickle.get(template))

    def projects_to_delete(self, listed_ids: list[str]) -> list[str]:
        """Which of the projects just listed by ``GET /projects`` must now disappear."""
        target = self.faults.delete_project_after_list
        if target is None:
            return []
        with self._lock:
            if isinstance(target, str):
                if target in listed_ids and target not in self._listed:
                    self._listed.add(target)
                    return [target]
                return []
            doomed = []
            for pid in listed_ids:
                if self._deleted < target and pid not in self._listed:
                    self._listed.add(pid)
                    self._deleted += 1
                    doomed.append(pid)
            return doomed
