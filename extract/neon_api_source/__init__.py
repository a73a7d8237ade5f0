"""dlt source for the Neon management API v2: the whole estate of an account.

Loads, into the dataset of the pipeline (`neon_api_data` by convention):

| table                 | from                                              | how                     |
|-----------------------|---------------------------------------------------|-------------------------|
| `organizations`       | `GET /users/me/organizations`                     | replace                 |
| `regions`             | `GET /regions` (per organization)                 | replace                 |
| `projects`            | `GET /projects` (per organization)                | scd2 on stable fields   |
| `project_branches`    | `GET /projects/{id}/branches`                     | scd2 on stable fields   |
| `endpoints`           | `GET /projects/{id}/endpoints` (the computes)     | scd2 on stable fields   |
| `project_snapshots`,  | the same listings                                 | merge, one row per id   |
| `branch_snapshots`,   |                                                   | and day: the volatile   |
| `endpoint_snapshots`  |                                                   | counters                |
| `databases`, `roles`  | `GET /projects/{id}/branches/{bid}/databases`,    | replace                 |
|                       | `.../roles` (one call per branch)                 |                         |
| `operations`          | `GET /projects/{id}/operations`                   | merge on id, only new   |
| `consumption`         | `GET /consumption_history/v2/projects` (daily)    | merge, by date, look-back|

Every list endpoint is read with its largest page size, children are fetched concurrently under one
client-side rate limiter shaped like Neon's limits, and transient failures are retried with
backoff. A child request that fails for good fails the whole run, so a partial listing can never
mark branches or computes as deleted; only a 404 (the parent was deleted mid-run) is skipped and
counted. Credential fields (role passwords, connection URIs) are dropped before anything is
written.

Configuration: `api_key` from `dlt.secrets` (`[sources.neon_api_source] api_key`), everything
else from `dlt.config` under the same section or from the arguments.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pyarrow
import pyarrow.compute

from . import settings
from .helpers import (
    CONSUMPTION_ROUTE,
    NeonAPIError,
    NeonClient,
    NeonForbidden,
    NeonNotFound,
    RunStats,
    column_hints,
    fan_out,
    neon_rate_limiter,
    paginate_cursor,
    paginate_next,
    pick,
)

__all__ = ["neon_api_source", "NeonClient", "NeonAPIError", "RunStats"]

SCD2 = {"disposition": "merge", "strategy": "scd2"}


@dlt.source(name="neon_api", max_table_nesting=0)
def neon_api_source(
    api_key: str | None = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    org_ids: list[str] | None = None,
    concurrency: int = settings.CONCURRENCY,
    requests_per_minute: int = settings.REQUESTS_PER_MINUTE,
    consumption: bool = True,
    client: Any = None,
) -> Any:
    """The Neon estate reachable with one API key.

    Args:
        api_key: a personal or organization API key (not needed when `client` is given).
        base_url: the API root, `https://console.neon.tech/api/v2` unless you test against a
            simulator.
        org_ids: restrict a personal key to these organizations (default: every one it can see).
        concurrency: requests in flight at once.
        requests_per_minute: the client-side rate limit (Neon allows 700; 0 disables the limiter).
        consumption: also load daily consumption history (plans without it are skipped).
        client: a ready `NeonClient` (tests, and the runner, which owns the stats and retry policy).
    """
    if client is None:
        if not api_key:
            raise NeonAPIError("/", None, "no API key: set [sources.neon_api_source] api_key")
        client = NeonClient(base_url, api_key, limiter=neon_rate_limiter(requests_per_minute))
    estate = Estate(client, org_ids=org_ids, workers=concurrency)
    resources = [
        organizations(estate),
        regions(estate),
        projects(estate),
        project_snapshots(estate),
        project_branches(estate),
        branch_snapshots(estate),
        endpoints(estate),
        endpoint_snapshots(estate),
        databases(estate),
        roles(estate),
        operations(estate),
        consumption_history(estate, enabled=consumption),
    ]
    return resources


class Estate:
    """The listings several resources share, fetched once per run and on first use."""

    def __init__(self, client: NeonClient, org_ids: list[str] | None = None, workers: int = 16):
        self.client = client
        self.stats: RunStats = client.stats
        self.workers = workers
        self.wanted_orgs = list(org_ids) if org_ids else None
        self.run_at = datetime.now(UTC).replace(microsecond=0)
        self.org_key = False  # an organization API key cannot list organizations or regions
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._memo: dict[str, Any] = {}

    def _once(self, name: str, fetch) -> Any:
        """`fetch()` once per run; concurrent callers wait for the first one's result."""
        with self._locks_lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._memo:
                self._memo[name] = fetch()
            return self._memo[name]

    # organizations decide how projects are listed: a personal key that belongs to organizations
    # must pass org_id (Neon answers 400 otherwise); an organization key sees its own org only.
    def organizations(self) -> list[dict]:
        return self._once("organizations", self._fetch_organizations)

    def _fetch_organizations(self) -> list[dict]:
        try:
            orgs = self.client.get("/users/me/organizations").get("organizations") or []
        except NeonForbidden:
            self.org_key = True
            self.stats.note("organization API key: organizations and regions were taken from the projects")
            return []
        if self.wanted_orgs:
            orgs = [o for o in orgs if o["id"] in self.wanted_orgs]
            missing = set(self.wanted_orgs) - {o["id"] for o in orgs}
            if missing:
                raise NeonAPIError(
                    "/users/me/organizations",
                    200,
                    f"the key is not a member of organization(s) {', '.join(sorted(missing))}",
                )
        return orgs

    def org_scopes(self) -> list[str | None]:
        """The org_id values to list projects with (None: no org_id parameter)."""
        orgs = self.organizations()
        if orgs:
            return [o["id"] for o in orgs]
        return [None]

    def projects(self) -> list[dict]:
        return self._once("projects", self._fetch_projects)

    def _fetch_projects(self) -> list[dict]:
        def list_org(org_id: str | None) -> list[dict]:
            params: dict[str, Any] = {"limit": settings.PROJECTS_PAGE_LIMIT}
            if org_id:
                params["org_id"] = org_id
            found = []
            for page in paginate_cursor(
                self.client, "/projects", "projects", params, validate=_complete_listing
            ):
                for project in page:
                    if org_id and not project.get("org_id"):
                        project["org_id"] = org_id
                found.extend(page)
            return found

        listed: dict[str, dict] = {}
        for org_projects in fan_out(list_org, self.org_scopes(), self.workers):
            for project in org_projects:
                listed[project["id"]] = project
        return list(listed.values())

    def project_ids(self) -> list[str]:
        return [p["id"] for p in self.projects()]

    def branches(self) -> Iterator[tuple[str, list[dict]]]:
        """(project id, its branches) for every project."""
        return self._decoded("branches", self._fetch_branches)

    def _fetch_branches(self, project_id: str) -> list[dict]:
        found: list[dict] = []
        for page in paginate_next(
            self.client,
            "/projects/{project_id}/branches",
            "branches",
            {"limit": settings.BRANCHES_PAGE_LIMIT},
            project_id=project_id,
        ):
            found.extend(page)
        return found

    def endpoints(self) -> Iterator[tuple[str, list[dict]]]:
        """(project id, its computes) for every project."""
        return self._decoded("endpoints", self._fetch_endpoints)

    def _fetch_endpoints(self, project_id: str) -> list[dict]:
        body = self.client.get("/projects/{project_id}/endpoints", project_id=project_id)
        return body.get("endpoints") or []

    def _decoded(self, name: str, fetch) -> Iterator[tuple[str, list[dict]]]:
        """A per-project listing, fetched once and kept as compact JSON: three readers share it
        (versions, snapshots, and the per-branch requests), and decoded dicts of a large account
        would take several times the memory."""
        for project_id, blob in self._once(name, lambda: self._per_project(fetch)).items():
            yield project_id, json.loads(blob)

    def _per_project(self, fetch) -> dict[str, str]:
        def one(project_id: str) -> tuple[str, str]:
            return project_id, json.dumps(self.children(fetch, project_id), separators=(",", ":"))

        return dict(fan_out(one, self.project_ids(), self.workers))

    def children(self, fetch, *args) -> list[dict]:
        """A child listing; a 404 means the parent was deleted since it was listed."""
        try:
            return fetch(*args)
        except NeonNotFound:
            self.stats.add(skipped_404=1)
            return []

    def branch_keys(self) -> list[tuple[str, str]]:
        return [(pid, b["id"]) for pid, branches in self.branches() for b in branches]


def _complete_listing(body: dict) -> str | None:
    """A projects page that names projects it could not fetch is incomplete: retry it rather than
    mark those projects (and their branches) as deleted."""
    missing = body.get("unavailable_project_ids")
    if missing:
        return f"Neon could not return details for projects {', '.join(missing[:5])}"
    return None


def _counted(estate: Estate, table: str, rows: list[dict]) -> list[dict]:
    estate.stats.count_rows(table, len(rows))
    return rows


def _snapshot(estate: Estate, key: str, record: dict, columns: dict[str, str], **ids: Any) -> dict:
    row = {key: record["id"], **ids, "snapshot_date": estate.run_at.date(), "snapshot_at": estate.run_at}
    row.update(pick(record, columns))
    return row


SNAPSHOT_HINTS = {
    "snapshot_date": {"data_type": "date", "nullable": False},
    "snapshot_at": {"data_type": "timestamp", "nullable": False},
}


# ------------------------------------------------------------------------------------------ resources


@dlt.resource(
    name="organizations",
    primary_key="id",
    write_disposition="replace",
    columns=column_hints(settings.ORGANIZATION_COLUMNS, ["id"]),
)
def organizations(estate: Estate) -> Iterator[list[dict]]:
    """The organizations the key can see (taken from the projects for an organization key)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    orgs = [pick(o, settings.ORGANIZATION_COLUMNS) for o in estate.organizations()]
    if estate.org_key:
        names = {p.get("org_id"): p.get("org_name") for p in estate.projects() if p.get("org_id")}
        orgs = [{"id": org_id, "name": name} for org_id, name in sorted(names.items())]
    yield _counted(estate, "organizations", orgs)


@dlt.resource(
    name="regions",
    primary_key="region_id",
    write_disposition="replace",
    columns=column_hints(settings.REGION_COLUMNS, ["region_id"]),
)
def regions(estate: Estate) -> Iterator[list[dict]]:
    """Regions Neon offers, listed per organization and merged. An organization key may not
    list regions: then the regions are the ones its projects live in, without names."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    found: dict[str, dict] = {}
    estate.organizations()  # decides whether this is an organization key
    scopes = [None] if estate.org_key else estate.org_scopes()
    for org_id in scopes:
        try:
            body = estate.client.get("/regions", {"org_id": org_id} if org_id else None)
        except NeonForbidden:
            estate.org_key = True
            break
        for region in body.get("regions") or []:
            found.setdefault(region["region_id"], pick(region, settings.REGION_COLUMNS))
    if estate.org_key:
        for project in estate.projects():
            found.setdefault(project["region_id"], {"region_id": project["region_id"]})
    yield _counted(estate, "regions", sorted(found.values(), key=lambda r: r["region_id"]))


@dlt.resource(
    name="projects",
    primary_key="id",
    write_disposition=SCD2,
    columns=column_hints(settings.PROJECT_COLUMNS, ["id"]),
)
def projects(estate: Estate) -> Iterator[list[dict]]:
    """Projects, one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield _counted(estate, "projects", [pick(p, settings.PROJECT_COLUMNS) for p in estate.projects()])


@dlt.resource(
    name="project_snapshots",
    primary_key=["project_id", "snapshot_date"],
    write_disposition="merge",
    columns={**column_hints(settings.PROJECT_SNAPSHOT_COLUMNS), **SNAPSHOT_HINTS},
)
def project_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Project usage counters, one row per project and day (the day's last run wins)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    rows = [_snapshot(estate, "project_id", p, settings.PROJECT_SNAPSHOT_COLUMNS) for p in estate.projects()]
    yield _counted(estate, "project_snapshots", rows)


@dlt.resource(
    name="project_branches",
    primary_key="id",
    write_disposition=SCD2,
    columns=column_hints(settings.BRANCH_COLUMNS, ["id", "project_id"]),
)
def project_branches(estate: Estate) -> Iterator[list[dict]]:
    """Branches of every project, one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for _, branches in estate.branches():
        if branches:
            yield _counted(estate, "project_branches", [pick(b, settings.BRANCH_COLUMNS) for b in branches])


@dlt.resource(
    name="branch_snapshots",
    primary_key=["branch_id", "snapshot_date"],
    write_disposition="merge",
    columns={**column_hints(settings.BRANCH_SNAPSHOT_COLUMNS), **SNAPSHOT_HINTS},
)
def branch_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Branch size and usage counters, one row per branch and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, branches in estate.branches():
        rows = [
            _snapshot(estate, "branch_id", b, settings.BRANCH_SNAPSHOT_COLUMNS, project_id=project_id)
            for b in branches
        ]
        if rows:
            yield _counted(estate, "branch_snapshots", rows)


@dlt.resource(
    name="endpoints",
    primary_key="id",
    write_disposition=SCD2,
    columns=column_hints(settings.ENDPOINT_COLUMNS, ["id", "project_id", "branch_id"]),
)
def endpoints(estate: Estate) -> Iterator[list[dict]]:
    """Computes (read-write and read-only endpoints), one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for _, computes in estate.endpoints():
        if computes:
            yield _counted(estate, "endpoints", [pick(e, settings.ENDPOINT_COLUMNS) for e in computes])


@dlt.resource(
    name="endpoint_snapshots",
    primary_key=["endpoint_id", "snapshot_date"],
    write_disposition="merge",
    columns={**column_hints(settings.ENDPOINT_SNAPSHOT_COLUMNS), **SNAPSHOT_HINTS},
)
def endpoint_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Compute state and activity, one row per compute and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, computes in estate.endpoints():
        rows = [
            _snapshot(estate, "endpoint_id", e, settings.ENDPOINT_SNAPSHOT_COLUMNS, project_id=project_id)
            for e in computes
        ]
        if rows:
            yield _counted(estate, "endpoint_snapshots", rows)


def _per_branch(estate: Estate, table: str, route: str, key: str, columns: dict[str, str]):
    def fetch(ids: tuple[str, str]) -> list[dict]:
        project_id, branch_id = ids
        body = estate.client.get(route, project_id=project_id, branch_id=branch_id)
        return [dict(pick(item, columns), project_id=project_id) for item in body.get(key) or []]

    def one(ids: tuple[str, str]) -> list[dict]:
        return estate.children(fetch, ids)

    for rows in fan_out(one, estate.branch_keys(), estate.workers):
        if rows:
            yield _counted(estate, table, rows)


@dlt.resource(
    name="databases",
    primary_key="id",
    write_disposition="replace",
    columns=column_hints({**settings.DATABASE_COLUMNS, "project_id": "text"}, ["id", "branch_id"]),
)
def databases(estate: Estate) -> Iterator[list[dict]]:
    """Databases of every branch (Neon keeps them per branch, not per project)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield from _per_branch(
        estate,
        "databases",
        "/projects/{project_id}/branches/{branch_id}/databases",
        "databases",
        settings.DATABASE_COLUMNS,
    )


@dlt.resource(
    name="roles",
    primary_key=["branch_id", "name"],
    write_disposition="replace",
    columns=column_hints({**settings.ROLE_COLUMNS, "project_id": "text"}, ["branch_id", "name"]),
)
def roles(estate: Estate) -> Iterator[list[dict]]:
    """Postgres roles of every branch. Passwords never leave the client."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield from _per_branch(
        estate,
        "roles",
        "/projects/{project_id}/branches/{branch_id}/roles",
        "roles",
        settings.ROLE_COLUMNS,
    )


@dlt.resource(
    name="operations",
    primary_key="id",
    write_disposition="merge",
    columns=column_hints(settings.OPERATION_COLUMNS, ["id", "project_id"]),
)
def operations(estate: Estate) -> Iterator[list[dict]]:
    """Operations of every project. Neon keeps six months; we keep them all, merging on id.

    Operations come newest first. After the first run, each project is read back only to the
    newest operation seen last time minus a look-back (statuses settle for a while), so a run
    costs one request per project in the usual case.
    """
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    state = dlt.current.resource_state()
    newest: dict[str, str] = state.setdefault("newest_created_at", {})
    lookback = timedelta(hours=settings.OPERATIONS_LOOKBACK_HOURS)

    def fetch(project_id: str) -> tuple[str, list[dict]]:
        stop_before = _parse_ts(newest[project_id]) - lookback if project_id in newest else None
        found: list[dict] = []
        pages = paginate_cursor(
            estate.client,
            "/projects/{project_id}/operations",
            "operations",
            {"limit": settings.OPERATIONS_PAGE_LIMIT},
            project_id=project_id,
        )
        for page in pages:
            found.extend(pick(op, settings.OPERATION_COLUMNS) for op in page)
            if stop_before and _parse_ts(page[-1]["created_at"]) < stop_before:
                pages.close()
                break
        return project_id, found

    def one(project_id: str) -> tuple[str, list[dict]]:
        try:
            return fetch(project_id)
        except NeonNotFound:
            estate.stats.add(skipped_404=1)
            return project_id, []

    current = set(estate.project_ids())
    for project_id, ops in fan_out(one, sorted(current), estate.workers):
        if ops:
            newest[project_id] = max([newest.get(project_id, "")] + [op["created_at"] for op in ops])
            yield _counted(estate, "operations", ops)
    for gone in set(newest) - current:
        del newest[gone]


@dlt.resource(
    name="consumption",
    primary_key=["project_id", "timeframe_start", "metric_name"],
    write_disposition="merge",
    columns={
        "org_id": {"data_type": "text"},
        "project_id": {"data_type": "text", "nullable": False},
        "period_id": {"data_type": "text"},
        "period_plan": {"data_type": "text"},
        "period_start": {"data_type": "timestamp"},
        "period_end": {"data_type": "timestamp"},
        "timeframe_start": {"data_type": "timestamp", "nullable": False},
        "timeframe_end": {"data_type": "timestamp"},
        "metric_name": {"data_type": "text", "nullable": False},
        "value": {"data_type": "bigint"},
    },
)
def consumption_history(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Daily consumption per project and metric, incrementally by date with a look-back, since
    Neon revises the latest day. Plans without consumption history (403) and rejected ranges (406)
    are noted once and skipped; the rest of the run goes on."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if not enabled:
        return
    state = dlt.current.resource_state()
    loaded_until: dict[str, str] = state.setdefault("loaded_until", {})
    today = estate.run_at.replace(hour=0, minute=0, second=0)
    earliest = today - timedelta(days=settings.CONSUMPTION_HISTORY_DAYS - 1)

    org_ids = [o["id"] for o in estate.organizations()]
    if estate.org_key:
        org_ids = sorted({p["org_id"] for p in estate.projects() if p.get("org_id")})
    if not org_ids:
        estate.stats.skipped_optional.append("consumption: needs an organization (personal account)")
        return

    for org_id in org_ids:
        start = earliest
        if org_id in loaded_until:
            start = max(
                earliest, _parse_ts(loaded_until[org_id]) - timedelta(days=settings.CONSUMPTION_LOOKBACK_DAYS)
            )
        params = {
            "org_id": org_id,
            "from": _iso(start),
            "to": _iso(estate.run_at),
            "granularity": "daily",
            "metrics": ",".join(settings.CONSUMPTION_METRICS),
            "limit": settings.CONSUMPTION_PAGE_LIMIT,
        }
        latest = loaded_until.get(org_id, "")
        try:
            for page in paginate_cursor(estate.client, CONSUMPTION_ROUTE, "projects", params):
                rows = _consumption_table(org_id, page)
                if rows.num_rows:
                    latest = max(latest, _iso(pyarrow.compute.max(rows["timeframe_start"]).as_py()))
                    estate.stats.count_rows("consumption", rows.num_rows)
                    yield rows
        except NeonAPIError as exc:
            if exc.status not in (403, 404, 406):
                raise
            estate.stats.skipped_optional.append(f"consumption for {org_id}: {exc.status} {exc.detail}")
            continue
        if latest:
            loaded_until[org_id] = latest


CONSUMPTION_SCHEMA = pyarrow.schema(
    [
        ("org_id", pyarrow.string()),
        pyarrow.field("project_id", pyarrow.string(), nullable=False),
        ("period_id", pyarrow.string()),
        ("period_plan", pyarrow.string()),
        ("period_start", pyarrow.timestamp("us", tz="UTC")),
        ("period_end", pyarrow.timestamp("us", tz="UTC")),
        pyarrow.field("timeframe_start", pyarrow.timestamp("us", tz="UTC"), nullable=False),
        ("timeframe_end", pyarrow.timestamp("us", tz="UTC")),
        pyarrow.field("metric_name", pyarrow.string(), nullable=False),
        ("value", pyarrow.int64()),
    ]
)


def _consumption_table(org_id: str, page: list[dict]) -> pyarrow.Table:
    """One page of consumption, flattened to one row per project, day and metric. An Arrow table
    rather than dicts: a large account has about a million of these rows, and dlt writes Arrow
    straight to parquet instead of normalizing row by row."""
    columns: dict[str, list] = {name: [] for name in CONSUMPTION_SCHEMA.names}
    for project in page:
        for period in project.get("periods") or []:
            period_values = (
                period.get("period_id"),
                period.get("period_plan"),
                _ts_or_none(period.get("period_start")),
                _ts_or_none(period.get("period_end")),
            )
            for frame in period.get("consumption") or []:
                start, end = (
                    _ts_or_none(frame.get("timeframe_start")),
                    _ts_or_none(frame.get("timeframe_end")),
                )
                for metric in frame.get("metrics") or []:
                    for name, value in zip(
                        CONSUMPTION_SCHEMA.names,
                        (
                            org_id,
                            project["project_id"],
                            *period_values,
                            start,
                            end,
                            metric["metric_name"],
                            metric["value"],
                        ),
                        strict=True,
                    ):
                        columns[name].append(value)
    return pyarrow.Table.from_pydict(columns, schema=CONSUMPTION_SCHEMA)


def _ts_or_none(value: str | None) -> datetime | None:
    return _parse_ts(value) if value else None


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
