"""The HTTP side of the simulator: Neon API v2 list endpoints served from an :class:`Account`.

Routing, query validation, envelopes and pagination follow ``tests/data/neon-openapi-v2.yaml``.
Every error is a ``GeneralError`` JSON body ``{"code", "message", "request_id"}``.

Pagination, as real Neon does it:

- ``/projects``, ``/projects/{project_id}/operations`` and ``/consumption_history/v2/projects``
  always answer ``pagination.cursor``, also on the last page and on the empty page after it (a
  client must stop on a short or empty page, not on a missing cursor).
- ``/projects/{project_id}/branches`` answers ``pagination.next`` only while more branches remain,
  beside the effective ``sort_by`` and ``sort_order``. Without ``limit`` it returns every branch.

Cursors are opaque (URL-safe base64 of a small JSON array) and stable: they hold the sort key of
the last item served (keyset pagination), so a page boundary never shifts when earlier items are
deleted. A branches cursor also holds its sort; an explicit, different ``sort_by``/``sort_order``
beside it is a 400. An empty page echoes the cursor it was given.

Each request goes through, in order: latency, random and persistent faults, authentication, rate
limiting, routing and query validation, then the handler, which reads the account under its lock.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .account import Account
from .faults import FaultInjector, Faults
from .limits import RateLimiter, RateLimits
from .reference import CONSUMPTION_EPOCH, CONSUMPTION_METRICS
from .timestamps import month_start, parse_ts

log = logging.getLogger(__name__)

API_PREFIX = "/api/v2"
_ID_PATTERN = re.compile(r"^[a-z0-9-]{1,60}$")
_PROJECT_IDS_PATTERN = re.compile(r"^([a-z0-9-]{1,60}(,[a-z0-9-]{1,60}){0,99})?$")
_UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_LOOPBACK = ("127.0.0.1", "localhost")
_HOUR, _DAY = 3600, 86400

ORG_KEY_FORBIDDEN = "not allowed for organization API keys"
ORG_ID_REQUIRED = "org_id is required, you can find it on your organization settings page"
CONSUMPTION_PLAN_REQUIRED = (
    "Not available for this account. Project consumption history requires a Launch, Scale, Agent, "
    "Business, or Enterprise plan."
)
_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Neon</title></head>"
    b"<body><h1>We'll be right back</h1><p>The service is temporarily unavailable.</p></body></html>"
)
#: How far back each consumption granularity reaches (the spec: 168 hours, 60 days, 1 year).
_CONSUMPTION_HORIZON = {"hourly": "168 hours", "daily": "60 days", "monthly": "1 year"}


class ApiError(Exception):
    """An error answer: HTTP ``status`` with a ``GeneralError`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# --------------------------------------------------------------------------------------------------
# Query parameters
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One query parameter as the spec declares it.

    ``kind`` is ``str``, ``int``, ``bool``, ``enum``, ``datetime`` or ``list`` (repeated and/or
    comma-separated values). Violations of type, bounds, enum, pattern or ``required`` are 400s.
    """

    kind: str = "str"
    required: bool = False
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    max_items: int | None = None


def parse_query(query: dict[str, list[str]], params: dict[str, Param]) -> dict[str, Any]:
    """Validate and convert the declared parameters of a query (undeclared ones are ignored)."""
    values: dict[str, Any] = {}
    for name, param in params.items():
        raw = query.get(name)
        if not raw:
            if param.required:
                raise ApiError(400, f"query parameter {name!r} is required")
            values[name] = param.default
            continue
        if param.kind == "list":
            values[name] = _parse_list(name, raw, param)
        else:
            values[name] = _parse_scalar(name, raw[0], param)
    return values


def _parse_scalar(name: str, raw: str, param: Param) -> Any:
    if param.kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
        if (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum
        ):
            raise ApiError(
                400, f"query parameter {name!r} must be between {param.minimum} and {param.maximum}"
            )
        return value
    if param.kind == "bool":
        if raw not in ("true", "false"):
            raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")
        return raw == "true"
    if param.kind == "enum":
        if raw not in param.choices:
            raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(param.choices)}")
        return raw
    if param.kind == "datetime":
        try:
            return parse_ts(raw)
        except ValueError:
            raise ApiError(
                400, f"query parameter {name!r} must be an RFC 3339 date-time, got {raw!r}"
            ) from None
    if param.pattern is not None and not param.pattern.match(raw):
        raise ApiError(400, f"query parameter {name!r} does not match {param.pattern.pattern}")
    return raw


def _parse_list(name: str, raw: list[str], param: Param) -> list[str]:
    if param.pattern is not None and not all(param.pattern.match(item) for item in raw):
        raise ApiError(400, f"query parameter {name!r} does not match {param.pattern.pattern}")
    items = [item for value in raw for item in value.split(",") if item]
    if param.required and not items:
        raise ApiError(400, f"query parameter {name!r} is required")
    if param.max_items is not None and len(items) > param.max_items:
        raise ApiError(400, f"query parameter {name!r} accepts at most {param.max_items} values")
    return list(dict.fromkeys(items))


_ORG_ID = Param(pattern=_ID_PATTERN)
_PROJECTS_PARAMS = {
    "cursor": Param(),
    "limit": Param("int", default=10, minimum=1, maximum=400),
    "search": Param(),
    "org_id": _ORG_ID,
    "timeout": Param("int", minimum=100, maximum=30000),
    "recoverable": Param("bool", default=False),
}
_SHARED_PROJECTS_PARAMS = {k: v for k, v in _PROJECTS_PARAMS.items() if k not in ("org_id", "recoverable")}
_BRANCHES_PARAMS = {
    "search": Param(),
    "sort_by": Param("enum", choices=("name", "created_at", "updated_at")),
    "cursor": Param(),
    "sort_order": Param("enum", choices=("asc", "desc")),
    "limit": Param("int", minimum=1, maximum=10000),
    "include_deleted": Param("bool", default=False),
}
_OPERATIONS_PARAMS = {"cursor": Param(), "limit": Param("int", minimum=1, maximum=1000)}
_CONSUMPTION_PARAMS = {
    "cursor": Param(),
    "limit": Param("int", default=10, minimum=1, maximum=100),
    "project_ids": Param("list", default=[], pattern=_PROJECT_IDS_PATTERN, max_items=100),
    "from": Param("datetime", required=True),
    "to": Param("datetime", required=True),
    "granularity": Param("enum", required=True, choices=("hourly", "daily", "monthly")),
    "org_id": Param(required=True, pattern=_ID_PATTERN),
    "metrics": Param("list", required=True),
}
_REGIONS_PARAMS = {"org_id": _ORG_ID}


# --------------------------------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------------------------------


def encode_cursor(*parts: str) -> str:
    """An opaque cursor holding string ``parts`` (URL-safe base64 of a JSON array, no padding)."""
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, arity: int) -> list:
    """The parts of a cursor from :func:`encode_cursor`; a malformed one is a 400."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity or not all(isinstance(p, str) for p in parts):
        raise ApiError(400, "invalid cursor")
    return parts


#: The cursor of an empty first page: it sorts before every item, so the next page is empty too.
_START_CURSOR = encode_cursor("", "")


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
# Routes
# --------------------------------------------------------------------------------------------------


@dataclass
class Request:
    """What a route handler sees of a request."""

    template: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    key: dict  # {"kind": "personal"} or {"kind": "org", "org_id": ...}


_ROUTES: list[tuple[str, str]] = [
    ("/users/me", "users_me"),
    ("/users/me/organizations", "users_me_organizations"),
    ("/regions", "regions"),
    ("/projects", "projects"),
    ("/projects/shared", "projects_shared"),
    ("/projects/{project_id}", "project"),
    ("/projects/{project_id}/branches", "branches"),
    ("/projects/{project_id}/branches/{branch_id}", "branch"),
    ("/projects/{project_id}/branches/{branch_id}/endpoints", "branch_endpoints"),
    ("/projects/{project_id}/branches/{branch_id}/databases", "databases"),
    ("/projects/{project_id}/branches/{branch_id}/roles", "roles"),
    ("/projects/{project_id}/endpoints", "endpoints"),
    ("/projects/{project_id}/operations", "operations"),
    ("/projects/{project_id}/operations/{operation_id}", "operation"),
    ("/consumption_history/v2/projects", "consumption"),
]
#: The route templates the simulator serves.
ROUTE_TEMPLATES: tuple[str, ...] = tuple(template for template, _ in _ROUTES)


def _compile(template: str) -> re.Pattern:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}$")


# Literal routes first, so that /projects/shared is not taken for a project id.
_COMPILED = sorted(
    ((template, _compile(template), name) for template, name in _ROUTES), key=lambda r: "{" in r[0]
)


def match_route(path: str) -> tuple[str, str, dict[str, str]] | None:
    """``(template, handler name, path parameters)`` for a path below ``/api/v2``, or ``None``."""
    for template, regex, name in _COMPILED:
        found = regex.match(path)
        if found:
            return template, name, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


class Routes:
    """The route handlers. Each returns the response body; errors raise :class:`ApiError`.

    Handlers run with the account lock held and read its live records (never mutate them).
    """

    def __init__(self, account: Account, faults: FaultInjector | None, stats: Callable[[str, int], None]):
        self.account = account
        self.faults = faults
        self._count_fault = stats

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _reject_org_key(req: Request) -> None:
        if req.key["kind"] == "org":
            raise ApiError(403, ORG_KEY_FORBIDDEN)

    def _member_org(self, req: Request, org_id: str) -> None:
        """404 unless the key may see ``org_id`` (org keys see only their own org)."""
        if req.key["kind"] == "org":
            if org_id != req.key["org_id"]:
                raise ApiError(404, f"organization {org_id} not found")
        elif not self.account._has_org(org_id):
            raise ApiError(404, f"organization {org_id} not found")

    def _project(self, req: Request):
        pid = req.path_params["project_id"]
        try:
            project = self.account._project(pid)
        except KeyError:
            raise ApiError(404, f"project {pid} not found") from None
        if req.key["kind"] == "org" and project.scope != req.key["org_id"]:
            raise ApiError(404, f"project {pid} not found")
        return project

    def _branch(self, req: Request):
        project = self._project(req)
        bid = req.path_params["branch_id"]
        if bid not in project.branches:
            raise ApiError(404, f"branch {bid} not found")
        return project, bid

    def _scope(self, req: Request, org_id: str | None) -> str | None:
        """The project scope a ``/projects`` request lists: an org id, or ``None`` (personal)."""
        if req.key["kind"] == "org":
            if org_id is not None and org_id != req.key["org_id"]:
                raise ApiError(404, f"organization {org_id} not found")
            return req.key["org_id"]
        if org_id is not None:
            self._member_org(req, org_id)
            return org_id
        if self.account._orgs:
            raise ApiError(400, ORG_ID_REQUIRED)
        return None

    def _keyset_page(self, scope: str | None, cursor: str | None, limit: int, search: str | None, ids=None):
        """Newest-first page of a scope's projects after ``cursor``: ``(project ids, next cursor)``."""
        order = self.account._order.get(scope, [])
        end = len(order)
        if cursor is not None:
            end = bisect.bisect_left(order, tuple(decode_cursor(cursor, 2)))
        needle = search.lower() if search else None
        page: list[str] = []
        for index in range(end - 1, -1, -1):
            if len(page) == limit:
                break
            pid = order[index][1]
            if ids is not None and pid not in ids:
                continue
            if (
                needle
                and needle not in pid
                and needle not in self.account._projects[pid].item["name"].lower()
            ):
                continue
            page.append(pid)
        if page:
            last = self.account._projects[page[-1]].item
            return page, encode_cursor(last["created_at"], last["id"])
        return page, cursor or _START_CURSOR

    # -- routes ----------------------------------------------------------------------------------

    def users_me(self, req: Request) -> dict:
        self._reject_org_key(req)
        return self.account._user

    def users_me_organizations(self, req: Request) -> dict:
        self._reject_org_key(req)
        return {"organizations": self.account._orgs}

    def regions(self, req: Request) -> dict:
        self._reject_org_key(req)
        args = parse_query(req.query, _REGIONS_PARAMS)
        if args["org_id"] is not None:
            self._member_org(req, args["org_id"])
        return {"regions": self.account._regions}

    def projects(self, req: Request) -> dict:
        args = parse_query(req.query, _PROJECTS_PARAMS)
        scope = self._scope(req, args["org_id"])
        if args["recoverable"]:
            # Deleted projects are gone for good here: there is nothing to recover.
            ids, cursor = [], args["cursor"] or _START_CURSOR
        else:
            ids, cursor = self._keyset_page(scope, args["cursor"], args["limit"], args["search"])
        projects = self.account._projects
        apps = {pid: projects[pid].applications for pid in ids if projects[pid].applications}
        body = {
            "projects": [projects[pid].item for pid in ids],
            "applications": apps,
            "integrations": apps,
            "pagination": {"cursor": cursor},
        }
        if self.faults is not None:
            # The body keeps references to the records, so it is still served in full.
            for pid in self.faults.projects_to_delete(ids):
                self.account.delete_project(pid)
                self._count_fault("delete_project_after_list", 1)
        return body

    def projects_shared(self, req: Request) -> dict:
        args = parse_query(req.query, _SHARED_PROJECTS_PARAMS)
        return {"projects": [], "pagination": {"cursor": args["cursor"] or _START_CURSOR}}

    def project(self, req: Request) -> dict:
        self._project(req)
        return {"project": self.account._project_detail(req.path_params["project_id"])}

    def branches(self, req: Request) -> dict:
        project = self._project(req)
        args = parse_query(req.query, _BRANCHES_PARAMS)
        sort_by, sort_order = args["sort_by"] or "updated_at", args["sort_order"] or "desc"
        after = None
        if args["cursor"] is not None:
            cursor_by, cursor_order, value, bid = decode_cursor(args["cursor"], 4)
            if cursor_by not in ("name", "created_at", "updated_at") or cursor_order not in ("asc", "desc"):
                raise ApiError(400, "invalid cursor")
            if (args["sort_by"] or cursor_by) != cursor_by or (
                args["sort_order"] or cursor_order
            ) != cursor_order:
                raise ApiError(400, "sort_by and sort_order must match the cursor")
            sort_by, sort_order, after = cursor_by, cursor_order, (value, bid)
        descending = sort_order == "desc"
        found = project.branches.values()
        if args["search"]:
            needle = args["search"].lower()
            found = [b for b in found if needle in b["name"].lower() or needle in b["id"]]
        ordered = sorted(found, key=lambda b: (b[sort_by], b["id"]), reverse=descending)
        if after is not None:
            ordered = [
                b
                for b in ordered
                if ((b[sort_by], b["id"]) < after if descending else (b[sort_by], b["id"]) > after)
            ]
        limit = args["limit"] or len(ordered)
        page = ordered[:limit]
        pagination = {"sort_by": sort_by, "sort_order": sort_order}
        if len(ordered) > limit:
            pagination["next"] = encode_cursor(sort_by, sort_order, page[-1][sort_by], page[-1]["id"])
        annotations = {b["id"]: project.annotations[b["id"]] for b in page if b["id"] in project.annotations}
        return {"branches": page, "annotations": annotations, "pagination": pagination}

    def branch(self, req: Request) -> dict:
        project, bid = self._branch(req)
        annotation = project.annotations.get(bid) or {
            "object": {"type": "console/branch", "id": bid},
            "value": {},
        }
        return {"branch": project.branches[bid], "annotation": annotation}

    def branch_endpoints(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"endpoints": [e for e in project.endpoints if e["branch_id"] == bid]}

    def databases(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"databases": project.databases[bid]}

    def roles(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"roles": project.roles[bid]}

    def endpoints(self, req: Request) -> dict:
        return {"endpoints": self._project(req).endpoints}

    def operations(self, req: Request) -> dict:
        project = self._project(req)
        args = parse_query(req.query, _OPERATIONS_PARAMS)
        ops = project.operations  # newest first: descending (created_at, id)
        start = 0
        if args["cursor"] is not None:
            key = tuple(decode_cursor(args["cursor"], 2))
            while start < len(ops) and (ops[start]["created_at"], ops[start]["id"]) >= key:
                start += 1
        page = ops[start : start + args["limit"]] if args["limit"] else ops[start:]
        cursor = (
            encode_cursor(page[-1]["created_at"], page[-1]["id"]) if page else args["cursor"] or _START_CURSOR
        )
        return {"operations": page, "pagination": {"cursor": cursor}}

    def operation(self, req: Request) -> dict:
        project = self._project(req)
        op_id = req.path_params["operation_id"]
        if not _UUID_PATTERN.match(op_id):
            raise ApiError(400, "operation_id must be a UUID")
        for op in project.operations:
            if op["id"] == op_id:
                return {"operation": op}
        raise ApiError(404, f"operation {op_id} not found")

    def consumption(self, req: Request) -> dict:
        args = parse_query(req.query, _CONSUMPTION_PARAMS)
        unknown = [m for m in args["metrics"] if m not in CONSUMPTION_METRICS]
        if unknown:
            raise ApiError(
                400, f"unsupported metrics: {', '.join(unknown)}; supported: {', '.join(CONSUMPTION_METRICS)}"
            )
        org_id, granularity = args["org_id"], args["granularity"]
        self._member_org(req, org_id)
        if org_id not in self.account._plan_orgs:
            raise ApiError(403, CONSUMPTION_PLAN_REQUIRED)
        start, end = (_round_down(args[k], granularity) for k in ("from", "to"))
        if start > end or start < _horizon(self.account.now_epoch, granularity):
            raise ApiError(
                406,
                f"the from/to range is not valid for granularity {granularity}: from must not be after "
                f"to, nor before {CONSUMPTION_EPOCH:%Y-%m-%d} or older than {_CONSUMPTION_HORIZON[granularity]}",
            )
        ids = set(args["project_ids"]) if args["project_ids"] else None
        page, cursor = self._keyset_page(org_id, args["cursor"], args["limit"], None, ids)
        projects = [
            {
                "project_id": pid,
                "periods": self.account._consumption_periods(
                    self.account._projects[pid], granularity, start, end, args["metrics"]
                ),
            }
            for pid in page
        ]
        return {"projects": projects, "pagination": {"cursor": cursor}}


def _round_down(epoch: int, granularity: str) -> int:
    """Round a ``from``/``to`` value down to its granularity, as the spec describes."""
    if granularity == "hourly":
        return epoch - epoch % _HOUR
    if granularity == "daily":
        return epoch - epoch % _DAY
    return month_start(epoch)


def _horizon(now: int, granularity: str) -> int:
    """The earliest allowed (rounded) ``from`` for a granularity at the account clock ``now``."""
    if granularity == "hourly":
        earliest = now - now % _HOUR - 168 * _HOUR
    elif granularity == "daily":
        earliest = now - now % _DAY - 60 * _DAY
    else:
        d = datetime.fromtimestamp(now, UTC)
        earliest = int(datetime(d.year - 1, d.month, 1, tzinfo=UTC).timestamp())
    return max(earliest, int(CONSUMPTION_EPOCH.timestamp()))


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
    (default: the account's personal key only). ``latency`` seconds are added to every response,
    in the handler thread, so concurrent requests still overlap. ``rate_limits=None`` disables rate
    limiting; ``faults=None`` disables faults. The server binds a loopback address only.
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
        self.rate_limits = rate_limits
        self.faults = faults
        self._limiter = RateLimiter(rate_limits) if rate_limits is not None else None
        self._injector = FaultInjector(faults) if faults is not None and faults.enabled else None
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._routes = Routes(account, self._injector, self._count_fault)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
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
        if self.latency:
            time.sleep(self.latency)
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
            for value in path_params.values():
                if not _ID_PATTERN.match(value):
                    raise ApiError(400, f"invalid path parameter {value!r}")
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
            self._send_truncated(handler, body)
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
        return kind  # truncate: needs the real body first

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

    def _respond_error(self, handler: _Handler, error: ApiError) -> None:
        """Answer a ``GeneralError`` (echoing the client's ``X-Request-ID`` if it sent one)."""
        self._count_status(error.status)
        request_id = handler.headers.get("X-Request-ID") or str(uuid.uuid4())
        body = json.dumps({"code": "", "message": error.message, "request_id": request_id}).encode()
        handler.send_body(error.status, body, headers=error.headers)
