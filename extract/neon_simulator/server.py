"""The HTTP side of the simulator: Neon API v2 list endpoints served from an :class:`Account`.

Every error is a ``GeneralError`` JSON body ``{"code", "message", "request_id"}``.

Each request goes through, in order: latency, random and persistent faults, authentication, rate
limiting, routing and query validation, then the handler, which reads the account under its lock.
This module is the connection handling, that order, and the statistics; the routes and their
handlers are in :mod:`~neon_simulator.routes`, query parameters in :mod:`~neon_simulator.params`,
the rate limits in :mod:`~neon_simulator.limits` and the faults in :mod:`~neon_simulator.faults`.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

from .account import Account
from .errors import ApiError
from .faults import FaultInjector, Faults
from .limits import RateLimiter, RateLimits
from .params import check_path
from .routes import Routes
from .routing import Request, match_route

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
_LOOPBACK = ("127.0.0.1", "localhost")

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Neon</title></head>"
    b"<body><h1>We'll be right back</h1><p>The service is temporarily unavailable.</p></body></html>"
)


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Request statistics. :attr:`Simulator.stats` hands out snapshots of it."""

    total: int = 0
    by_route: Counter = field(default_factory=Counter)  # route template (or "<unknown>") -> count
    by_request: Counter = field(default_factory=Counter)  # exact request target (path + query) -> count
    by_status: Counter = field(default_factory=Counter)  # HTTP status served -> count
    rate_limited: int = 0  # 429s served by rate-limit enforcement (fault 429s are in `faults`)
    faults: Counter = field(default_factory=Counter)  # fault kind -> times injected

    def copy(self) -> Stats:
        """A snapshot that later requests do not change."""
        return Stats(
            self.total,
            Counter(self.by_route),
            Counter(self.by_request),
            Counter(self.by_status),
            self.rate_limited,
            Counter(self.faults),
        )


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, every response with ``Content-Length``."""

    protocol_version = "HTTP/1.1"
    server_version = "neon-simulator"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:
        """Silence the default per-request stderr log (statistics are in :attr:`Simulator.stats`)."""

    def do_GET(self) -> None:
        try:
            self.server.sim._handle_get(self)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _not_allowed(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.sim._respond_error(
            self, ApiError(405, f"method {self.command} not allowed", {"Allow": "GET"})
        )

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _not_allowed

    def send_body(
        self, status: int, body: bytes, content_type: str = "application/json", headers=None
    ) -> None:
        """Send a complete response (headers only for ``HEAD``)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    """A thread per connection; remembers open connections so that :meth:`Simulator.stop` can end them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # many clients connecting at once must not wait for SYN retries

    def __init__(self, address, sim: Simulator):
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every open client connection, so that idle keep-alive handlers end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("connection already closed")

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up are normal here (faults, timeouts, stop()); log anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            log.exception("simulator: error while serving %s", client_address)


class Simulator:
    """A local Neon API v2 server for one :class:`Account`; a context manager.

    ``api_keys`` maps key strings to ``{"kind": "personal"}`` or ``{"kind": "org", "org_id": ...}``
    (default: the account's personal key only). ``latency`` seconds, plus a uniformly drawn
    ``0..jitter`` seconds, are added to every request before it reaches the rate limiter, in the
    handler thread, so concurrent requests still overlap and arrive in a different order and
    spacing than they were sent. ``rate_limits=None`` disables rate limiting; ``faults=None``
    disables faults. The server binds a loopback address only.
    """

    def __init__(
        self,
        account: Account,
        api_keys: dict[str, dict] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limits: RateLimits | None = None,
        faults: Faults | None = None,
        jitter: float = 0.0,
    ):
        if host not in _LOOPBACK:
            raise ValueError(f"the simulator binds a loopback address only, not {host!r}")
        self.account = account
        self.api_keys = (
            dict(api_keys) if api_keys is not None else {account.personal_api_key: {"kind": "personal"}}
        )
        for info in self.api_keys.values():
            if info.get("kind") not in ("personal", "org") or (
                info["kind"] == "org" and "org_id" not in info
            ):
                raise ValueError(f"bad API key description {info!r}")
        self.host = host
        self.port = port
        self.latency = latency
        self.jitter = jitter
        self._jitter_draw = random.Random(0).uniform
        self.rate_limits = rate_limits
        self.faults = faults
        self._limiter = RateLimiter(rate_limits) if rate_limits is not None else None
        self._injector = FaultInjector(faults) if faults is not None and faults.enabled else None
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._routes = Routes(account, self._injector, self._count_fault)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # ends trickled answers (faults.trickle) at stop()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="neon-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/v2`` (the port is known once started)."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    @property
    def api_key(self) -> str:
        """The default key: the first personal key, else the first key."""
        for key, info in self.api_keys.items():
            if info["kind"] == "personal":
                return key
        return next(iter(self.api_keys))

    # -- statistics ------------------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """A snapshot of the request statistics."""
        with self._stats_lock:
            return self._stats.copy()

    def reset_stats(self) -> None:
        """Forget all statistics so far."""
        with self._stats_lock:
            self._stats = Stats()

    def _count_fault(self, kind: str, n: int = 1) -> None:
        with self._stats_lock:
            self._stats.faults[kind] += n

    def _count_status(self, status: int) -> None:
        with self._stats_lock:
            self._stats.by_status[status] += 1

    # -- request handling ------------------------------------------------------------------------

    def _handle_get(self, handler: _Handler) -> None:
        target = handler.path
        parts = urlsplit(target)
        path = parts.path
        matched = match_route(path[len(API_PREFIX) :]) if path.startswith(API_PREFIX + "/") else None
        template = matched[0] if matched else "<unknown>"
        with self._stats_lock:
            self._stats.total += 1
            self._stats.by_route[template] += 1
            self._stats.by_request[target] += 1
        if self.latency or self.jitter:
            time.sleep(self.latency + (self._jitter_draw(0, self.jitter) if self.jitter else 0.0))
        try:
            fault = self._fault(handler, template, path[len(API_PREFIX) :])
            if fault == "handled":
                return
            key = self._authenticate(handler)
            if self._limiter is not None and not self._limiter.try_acquire(template):
                with self._stats_lock:
                    self._stats.rate_limited += 1
                raise ApiError(429, "too many requests")
            if matched is None:
                raise ApiError(404, f"no route for {path}")
            _, name, path_params = matched
            check_path(template, path_params)
            request = Request(template, path_params, parse_qs(parts.query, keep_blank_values=True), key)
            with self.account.lock:
                body = json.dumps(getattr(self._routes, name)(request), separators=(",", ":")).encode()
        except ApiError as error:
            self._respond_error(handler, error)
            return
        except Exception:
            log.exception("simulator: %s failed", target)
            self._respond_error(handler, ApiError(500, "internal server error"))
            return
        if fault == "truncate":
            self._count_fault("truncate")
            self._send_truncated(handler, body)
            return
        interval = (
            self._injector.trickle_interval(template, path[len(API_PREFIX) :]) if self._injector else None
        )
        if interval is not None:
            self._count_fault("trickle")
            self._send_trickled(handler, body, interval)
            return
        handler.send_body(200, body)
        self._count_status(200)

    def _authenticate(self, handler: _Handler) -> dict:
        header = handler.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        info = self.api_keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            raise ApiError(401, "authentication required" if not header else "invalid API key")
        return info

    def _fault(self, handler: _Handler, template: str, path: str) -> str | None:
        """Apply a persistent or random fault. ``"handled"`` = answered already; ``"truncate"`` = later."""
        injector = self._injector
        if injector is None:
            return None
        status = injector.persistent_status(template, path)
        if status is not None:
            self._count_fault("persistent")
            raise ApiError(status, "service unavailable" if status == 503 else "internal server error")
        kind = injector.draw()
        if kind is None:
            return None
        if kind == "truncate":
            return kind  # needs the real body first, and counts only once it is cut (not on an error)
        self._count_fault(kind)
        if kind == "drop":
            handler.close_connection = True
            return "handled"
        if kind == "slow":
            time.sleep(self.faults.slow_seconds)
            return None
        if kind == "error":
            status = injector.choose((500, 503))
            raise ApiError(status, "service unavailable" if status == 503 else "internal server error")
        if kind == "burst_429":
            retry_after = self.faults.retry_after
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            self._respond_error(handler, ApiError(429, "too many requests", headers))
            return "handled"
        if kind == "not_json":
            handler.send_body(200, _HTML_PAGE, "text/html; charset=utf-8")
            self._count_status(200)
            return "handled"
        return kind

    def _send_truncated(self, handler: _Handler, body: bytes) -> None:
        """Either a body cut short of its Content-Length (then hang up), or complete but broken JSON."""
        half = body[: max(1, len(body) // 2)]
        if self._injector.choose(("short_body", "broken_json")) == "short_body":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(half)
            handler.close_connection = True
        else:
            handler.send_body(200, half)
        self._count_status(200)

    def _send_trickled(self, handler: _Handler, body: bytes, interval: float) -> None:
        """Status 200 and the whole Content-Length at once, then one byte every ``interval`` seconds."""
        self._count_status(200)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            if self._stopping.wait(interval):
                handler.close_connection = True
                return

    def _respond_error(self, handler: _Handler, error: ApiError) -> None:
        """Answer a ``GeneralError`` (echoing the client's ``X-Request-ID`` if it sent one)."""
        self._count_status(error.status)
        request_id = handler.headers.get("X-Request-ID") or str(uuid.uuid4())
        body = json.dumps({"code": "", "message": error.message, "request_id": request_id}).encode()
        handler.send_body(error.status, body, headers=error.headers)
