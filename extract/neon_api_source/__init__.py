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
| `deleted_branches`    | the branch listing (`include_deleted=true`): the  | merge on id             |
|                       | deleted branches Neon can still restore           |                         |
| `databases`, `roles`  | `GET /projects/{id}/branches/{bid}/databases`,    | replace                 |
|                       | `.../roles` (one call per branch)                 |                         |
| `operations`          | `GET /projects/{id}/operations`                   | merge on id, only new   |
| `backup_snapshots`    | `GET /projects/{id}/snapshots` (Neon's snapshots) | replace, every run      |
| `backup_schedules`    | `GET /projects/{id}/branches/{bid}/backup_schedule`| merge on branch id, with|
|                       | (root branches)                                   | the branch listing      |
| `organization_spending_limits` | `GET /organizations/{org_id}/billing/     | replace, every run      |
|                       | spending_limit` (Launch and Scale)                |                         |
| `consumption`         | `GET /consumption_history/v2/projects` (daily)    | new days and a look-back|
| `consumption_hourly`  | the same, hourly, `extra_branches_month` only     | replace the days (hours)|
| `branch_consumption`  | `GET /consumption_history/v2/branches` (daily,    | read; older ones stay   |
|                       | 100 projects a request)                           |                         |
| `confirmations`       | (this source) when the API last confirmed each    | replace                 |
|                       | listing, why it was read, when it is due again    |                         |

After the first run, a run re-reads only what Neon signals as changed and carries the rest forward
from the warehouse it loads into (incremental.py decides what, and says why); every project is
re-read in full at least once every `full_refresh_days`. The scd2 tables still get the whole estate
on every run (carried rows keep the hash of their current version), so deletions retire versions
exactly as in a full run.

Every list endpoint is read with its largest page size, children are fetched concurrently under one
client-side rate limiter shaped like Neon's limits, and transient failures are retried with
backoff. A child request that fails for good fails the whole run, so a partial listing can never
mark branches or computes as deleted; only a 404 (the parent was deleted mid-run) is skipped and
counted. Credential fields (role passwords, connection URIs) are dropped before anything is
written.

Configuration: dlt fills the source's settings from its arguments, `NEON_API_KEY` and
`NEON_API_BASE_URL`, the environment (`SOURCES__NEON_API_SOURCE__<KEY>`) and `[sources.neon_api_source]`
in `.dlt/secrets.toml` (`api_key`, `email_hash_salt`) and `.dlt/config.toml` (configuration.py).

Who can reach the estate (access.py): organization members, organization API keys, VPC endpoints
and, per project, shares and VPC restrictions, with `access_coverage` saying what the key could
not read. Emails land in two columns only, hashed with `hash_emails` (salt: `email_hash_salt`,
a secret).
"""

from __future__ import annotations

import array
import base64
import functools
import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import pyarrow
import pyarrow.compute
from dlt.common.data_types import coerce_value, py_type_to_sc_type
from dlt.extract import DltSource

from . import incremental, settings
from .access import CARRIED_COLUMNS as CARRIED_ACCESS_COLUMNS
from .access import Access, Emails
from .access import resources as access_resources
from .configuration import NeonApiSourceConfiguration, make_client, resolve
from .helpers import (
    CONFIRMED_AT_HINT,
    CONSUMPTION_ROUTE,
    NeonAPIError,
    NeonClient,
    NeonForbidden,
    NeonNotFound,
    RunStats,
    column_hints,
    fan_out,
    origin_of,
    paginate_cursor,
    paginate_next,
    pick,
)

__all__ = ["neon_api_source", "NeonClient", "NeonAPIError", "RunStats"]

SCD2 = {"disposition": "merge", "strategy": "scd2"}


def neon_api_source(
    *,
    org_ids: list[str] | None = None,
    consumption: bool = True,
    full_refresh: bool = False,
    plan_only: bool = False,
    run_at: datetime | None = None,
    client: NeonClient | None = None,
    **given: Any,
) -> DltSource:
    """The Neon estate reachable with one API key, as a dlt source.

    Its settings are the fields of `NeonApiSourceConfiguration` (configuration.py), given here by
    name (`api_key=`, `base_url=`, `budget_share=`, `hash_emails=`...) or left to dlt to find:
    configuration.py says where, in which order, and their defaults.

    Args:
        org_ids: restrict a personal key to these organizations (default: every one it can see).
        consumption: also load daily consumption history, per project and per branch (plans
            without it are skipped).
        full_refresh: re-read everything this run.
        plan_only: read the signals and decide the plan (`RunStats.plan`), load nothing.
        run_at: the run's clock (default: now); tests move it to simulate days.
        client: a ready `NeonClient` (from configuration.make_client): the runner's, which owns
            the run's statistics; the client's settings are then its. Without it the source
            builds one from its settings (`api_key` is then needed).
    """
    config = resolve(**given)
    client = client or make_client(config)
    estate = Estate(
        client,
        org_ids=org_ids,
        workers=config.concurrency,
        run_at=run_at,
        full_refresh_days=config.full_refresh_days,
        full_refresh=full_refresh,
    )
    source = neon_api(config, estate, consumption=consumption, plan_only=plan_only)
    source.estate = estate  # the runner loads the consumption an organization at a time (consumption_orgs)
    return source


@dlt.source(name="neon_api", max_table_nesting=0, section="neon_api_source", spec=NeonApiSourceConfiguration)
def neon_api(
    config: NeonApiSourceConfiguration,
    estate: Estate,
    consumption: bool = True,
    plan_only: bool = False,
) -> Any:
    """The dlt source of `neon_api_source()`, from settings it resolved (dlt passes resolved ones
    on as they are) and the estate built from them."""
    emails = Emails(config.hash_emails, config.email_hash_salt)
    if plan_only:
        return [plan_resource(estate)]
    resources = [
        organizations(estate),
        regions(estate),
        projects(estate),
        project_snapshots(estate),
        project_branches(estate),
        branch_snapshots(estate),
        deleted_branches(estate),
        endpoints(estate),
        endpoint_snapshots(estate),
        databases(estate),
        roles(estate),
        operations(estate),
        backup_snapshots(estate),
        backup_schedules(estate),
        organization_spending_limits(estate),
        consumption_history(estate, enabled=consumption),
        consumption_hourly(estate, enabled=consumption),
        branch_consumption(estate, enabled=consumption),
        confirmations(estate),
    ]
    resources += access_resources(Access(estate, emails))  # who can reach the estate
    return resources


class Estate:
    """The listings several resources share, fetched once per run and on first use."""

    def __init__(
        self,
        client: NeonClient,
        org_ids: list[str] | None = None,
        workers: int = 16,
        *,
        run_at: datetime | None = None,
        full_refresh_days: int = settings.FULL_REFRESH_DAYS,
        full_refresh: bool = False,
    ):
        self.client = client
        self.stats: RunStats = client.stats
        self.workers = workers
        self.wanted_orgs = list(org_ids) if org_ids else None
        self.run_at = (run_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self.full_refresh_days = full_refresh_days
        self.full_refresh = full_refresh
        self.org_key = False  # an organization API key cannot list organizations or regions
        self.include_deleted = True  # list restorable deleted branches with the live ones
        self.deleted_branches: dict[str, list[dict]] = {}  # project id -> those read this run
        # the organizations whose consumption an extract reads (None: every one): the runner
        # extracts and loads a large account's an organization at a time (neon_elt.memory)
        self.consumption_orgs: list[str] | None = None
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

    def org_ids(self) -> list[str]:
        """Every organization the key sees (an organization key: its projects' one)."""
        orgs = [o["id"] for o in self.organizations()]
        if self.org_key:
            orgs = sorted({p["org_id"] for p in self.projects() if p.get("org_id")})
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

    # --------------------------------------------------------------------------- signals and plan

    def operations(self) -> Iterator[list[dict]]:
        """Each project's operations since the last one seen (minus a look-back), once the plan
        has used them; each project's are dropped once handed over."""
        self.planner()
        blobs = self._once("operations", self._fetch_all_operations)
        for project_id in list(blobs):
            blob, _ = blobs.pop(project_id)
            yield json.loads(blob)

    def operations_of(self, project_id: str) -> tuple[list[dict], bool]:
        """A project's operations read this run (newest first, back to the last one seen minus a
        look-back, kept as compact JSON: a large account has tens of thousands), and whether the
        reading reached back that far. First called inside a resource: it reads dlt state."""
        blob, complete = self._once("operations", self._fetch_all_operations).get(project_id, ("[]", True))
        return json.loads(blob), complete

    def _fetch_all_operations(self) -> dict[str, tuple[str, bool]]:
        newest: dict[str, str] = dlt.current.resource_state("operations").setdefault("newest_created_at", {})
        lookback = timedelta(hours=settings.OPERATIONS_LOOKBACK_HOURS)

        def one(project_id: str) -> tuple[str, list[dict], bool]:
            read = self.unless_deleted(self._fetch_operations, project_id, newest.get(project_id), lookback)
            found, complete = read if read is not None else ([], True)
            return project_id, found, complete

        current = set(self.project_ids())
        result: dict[str, tuple[str, bool]] = {}
        for project_id, ops, complete in fan_out(one, sorted(current), self.workers):
            result[project_id] = (json.dumps(ops, separators=(",", ":")), complete)
            if ops:
                newest[project_id] = max([newest.get(project_id, "")] + [op["created_at"] for op in ops])
            elif not complete:  # everything seen before has expired: start afresh
                newest.pop(project_id, None)
        for gone in set(newest) - current:
            del newest[gone]
        return result

    def _fetch_operations(self, project_id: str, seen: str | None, lookback: timedelta):
        """Newest first, back to `seen` minus the look-back. Complete when the reading reached
        `seen`; a listing that ends before it (Neon keeps six months) or a later page Neon no
        longer resolves leaves a gap."""
        stop_before = _parse_ts(seen) - lookback if seen else None
        found: list[dict] = []
        pages = paginate_cursor(
            self.client,
            "/projects/{project_id}/operations",
            "operations",
            {"limit": settings.OPERATIONS_PAGE_LIMIT},
            project_id=project_id,
        )
        try:
            for page in pages:
                found.extend(pick(op, settings.OPERATION_COLUMNS) for op in page)
                if stop_before and _parse_ts(page[-1]["created_at"]) < stop_before:
                    pages.close()
                    return found, True
        except NeonAPIError as exc:
            if not found or exc.status not in (400, 404, 410):
                raise
            self.stats.note(f"operations of {project_id}: a later page answered {exc.status}; read in full")
            return found, False
        if seen is None:
            return found, True
        return found, any(op["created_at"] <= seen for op in found)

    def planner(self) -> incremental.Planner:
        """The plan, decided once from the signals (inside a resource: it reads dlt state)."""
        return self._once("plan", self._make_plan)

    def _make_plan(self) -> incremental.Planner:
        run_state = dlt.current.source_state().setdefault("run", {})
        previous, full_reason = None, incremental.FORCED if self.full_refresh else None
        if full_reason is None:
            previous, full_reason = self._read_previous()
        if full_reason is None:
            full_reason = self._changed_since(run_state)
        last_run = run_state.get("last_run_at")
        planner = incremental.Planner(
            previous,
            now=self.run_at,
            full_refresh_days=self.full_refresh_days,
            full_reason=full_reason,
            last_run_at=_parse_ts(last_run) if last_run else None,
        )
        for project in self.projects():
            planner.project(project, *self.operations_of(project["id"]))
        run_state.update(
            last_run_at=_iso(self.run_at),
            origin=origin_of(self.client.base_url),
            key_fingerprint=self.client.key_fingerprint,
            org_ids=sorted(o["id"] for o in self.organizations()),
        )
        self.stats.plan = planner.plan
        return planner

    def _read_previous(self) -> tuple[incremental.Previous | None, str | None]:
        """The last published run's confirmations and current rows (the access listings' too),
        from the destination, in one read: whatever part of it fails makes a full run."""
        pipeline = dlt.current.pipeline()
        names = (
            "confirmations",
            "_dlt_loads",
            "project_branches",
            "endpoints",
            "databases",
            "roles",
            *CARRIED_ACCESS_COLUMNS,
            "organization_vpc_endpoints",
        )
        try:
            with pipeline.sql_client() as client:
                tables = {name: client.make_qualified_table_name(name) for name in names}
                return incremental.read_previous(
                    lambda sql: client.execute_sql(sql) or [], tables, CARRIED_ACCESS_COLUMNS
                )
        except Exception as exc:  # no destination to read, or rows not as this version writes them
            return None, f"the last run's state could not be read ({type(exc).__name__})"

    def _changed_since(self, run_state: dict) -> str | None:
        """Why this run must be a full one although the last run left a state, or None."""
        if not run_state.get("last_run_at"):
            return "no record of the last run"
        if run_state.get("origin") != origin_of(self.client.base_url):
            return "the API base URL changed"
        if run_state.get("key_fingerprint") != self.client.key_fingerprint:
            return "the API key changed"
        new_orgs = {o["id"] for o in self.organizations()} - set(run_state.get("org_ids") or [])
        if new_orgs:
            return f"new organization {', '.join(sorted(new_orgs))}"
        age = self.run_at - _parse_ts(run_state["last_run_at"])
        if age > timedelta(days=settings.OPERATIONS_RETENTION_DAYS):
            return f"the last run is {age.days} days old, older than Neon keeps operations"
        return None

    # ------------------------------------------------------------------------------ the listings

    def branches(self) -> Iterator[tuple[str, list[dict], bool]]:
        """(project id, its branches, read this run?) for every project. Carried branches have
        only `id`, `project_id` and `_dlt_id`, the hash of their current version."""
        return self._listing("branches", self._fetch_branches, ("id", "_dlt_id"))

    def _fetch_branches(self, project_id: str) -> list[dict]:
        """The project's branches, read with `include_deleted=true`: the same request also
        returns the deleted branches still restorable (each with `recovery`), kept aside for
        `deleted_branches`. A key whose account Neon refuses the parameter (a preview feature)
        with a 400 reads without it for the rest of the run."""
        params: dict[str, Any] = {"limit": settings.BRANCHES_PAGE_LIMIT}
        if self.include_deleted:
            params["include_deleted"] = "true"
        found: list[dict] = []
        try:
            for page in paginate_next(
                self.client, "/projects/{project_id}/branches", "branches", params, project_id=project_id
            ):
                found.extend(page)
        except NeonAPIError as exc:
            if exc.status != 400 or "include_deleted" not in params:
                raise
            if self.include_deleted:
                self.include_deleted = False
                self.stats.note(
                    f"deleted branches not listed: Neon refused include_deleted ({exc.status}); "
                    "branch_history says only when a run stopped seeing a branch"
                )
            return self._fetch_branches(project_id)
        live = [b for b in found if not b.get("recovery")]
        if len(live) < len(found):
            self.deleted_branches[project_id] = [b for b in found if b.get("recovery")]
        return live

    def endpoints(self) -> Iterator[tuple[str, list[dict], bool]]:
        """(project id, its computes, read this run?) for every project (carried: keys and hash)."""
        return self._listing("endpoints", self._fetch_endpoints, ("id", "branch_id", "_dlt_id"))

    def _fetch_endpoints(self, project_id: str) -> list[dict]:
        body = self.client.get("/projects/{project_id}/endpoints", project_id=project_id)
        return body.get("endpoints") or []

    def _listing(
        self, name: str, fetch, carried_keys: tuple[str, ...]
    ) -> Iterator[tuple[str, list[dict], bool]]:
        """A per-project listing, fetched once and kept as compact JSON: three readers share it
        (versions, snapshots, and the per-branch requests), and decoded dicts of a large account
        would take several times the memory."""
        for project_id, (fresh, blob) in self._once(name, lambda: self._per_project(name, fetch)).items():
            records = json.loads(blob)
            if not fresh:
                records = [
                    dict(zip(carried_keys, row, strict=True), project_id=project_id) for row in records
                ]
            yield project_id, records, fresh

    def _per_project(self, name: str, fetch) -> dict[str, tuple[bool, str]]:
        planner = self.planner()
        previous = planner.previous
        listed: dict[str, tuple[bool, str]] = {}
        wanted = []
        for project_id in self.project_ids():
            if planner.plan.projects[project_id].mode == incremental.CARRY:
                assert previous is not None
                listed[project_id] = (False, getattr(previous, name).get(project_id, "[]"))
            else:
                wanted.append(project_id)

        def one(project_id: str) -> tuple[str, str]:
            return project_id, json.dumps(self.children(fetch, project_id), separators=(",", ":"))

        for project_id, blob in fan_out(one, wanted, self.workers):
            listed[project_id] = (True, blob)
        return listed

    def children(self, fetch, *args) -> list[dict]:
        """A child listing; none when the parent was deleted since it was listed."""
        found = self.unless_deleted(fetch, *args)
        return [] if found is None else found

    def unless_deleted(self, fetch, *args) -> Any:
        """`fetch(*args)`, a request about a project (or its branch) listed this run; None when it
        answers 404: the project was deleted since, which the run counts with its skipped 404s."""
        try:
            return fetch(*args)
        except NeonNotFound:
            self.stats.add(skipped_404=1)
            return None

    # ----------------------------------------------------------------- databases, roles, confirmations

    def contents(self) -> list[tuple[str, str, str | None, str | None]]:
        """(project id, branch id, its `updated_at`, why its databases and roles are read this run,
        or None to carry them) for every branch."""
        return self._once("contents", self._plan_contents)

    def _plan_contents(self) -> list[tuple[str, str, str | None, str | None]]:
        planner = self.planner()
        plan: list[tuple[str, str, str | None, str | None]] = []
        for project_id, branches, fresh in self.branches():
            decision = planner.plan.projects[project_id]
            for branch in branches:
                reason = planner.branch_contents(decision, branch) if fresh else None
                planner.count_branch(reason)
                plan.append((project_id, branch["id"], branch.get("updated_at"), reason))
        self.stats.notes.extend(planner.plan.describe())
        return plan

    def confirmations(self) -> Iterator[list[dict]]:
        """The `confirmations` rows after this run, a project (and its branches) at a time."""
        planner = self.planner()
        branches: dict[str, list[tuple]] = {}
        for project_id, branch_id, updated_at, reason in self.contents():
            branches.setdefault(project_id, []).append((branch_id, updated_at, reason))
        for listing in self.projects():
            decision = planner.plan.projects[listing["id"]]
            project = planner.project_confirmation(decision, listing)
            yield [project.row()] + [
                planner.branch_confirmation(project, branch_id, updated_at, reason).row()
                for branch_id, updated_at, reason in branches.pop(listing["id"], [])
            ]


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
    for _, branches, fresh in estate.branches():
        if branches:
            rows = [pick(b, settings.BRANCH_COLUMNS) for b in branches] if fresh else branches
            yield _counted(estate, "project_branches", rows)


@dlt.resource(
    name="branch_snapshots",
    primary_key=["branch_id", "snapshot_date"],
    write_disposition="merge",
    columns={**column_hints(settings.BRANCH_SNAPSHOT_COLUMNS), **SNAPSHOT_HINTS},
)
def branch_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Branch size and usage counters, one row per branch and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, branches, fresh in estate.branches():
        if not fresh:  # a snapshot is a reading: none for what this run did not read
            continue
        rows = [
            _snapshot(estate, "branch_id", b, settings.BRANCH_SNAPSHOT_COLUMNS, project_id=project_id)
            for b in branches
        ]
        if rows:
            yield _counted(estate, "branch_snapshots", rows)


@dlt.resource(
    name="deleted_branches",
    primary_key="id",
    write_disposition="merge",
    columns={
        **column_hints(
            {**settings.DELETED_BRANCH_COLUMNS, **settings.BRANCH_RECOVERY_COLUMNS},
            ["id", "project_id", "deleted_at", "recoverable_until", "deletion_method"],
        ),
        **CONFIRMED_AT_HINT,
    },
)
def deleted_branches(estate: Estate) -> Iterator[list[dict]]:
    """Deleted branches Neon can still restore, with when and how each went (`recovery`), as the
    branch listings read this run return them; a branch seen earlier keeps its row (merge), so
    `recoverable_until` says whether it can still be restored."""
    yield dlt.mark.materialize_table_schema()
    for project_id, _, fresh in estate.branches():  # the listing reads them
        if not fresh:
            continue
        rows = [
            {
                **pick(b, settings.DELETED_BRANCH_COLUMNS),
                **pick(b["recovery"], settings.BRANCH_RECOVERY_COLUMNS),
                "project_id": project_id,
                "confirmed_at": estate.run_at,
            }
            for b in estate.deleted_branches.get(project_id, [])
        ]
        if rows:
            yield _counted(estate, "deleted_branches", rows)


@dlt.resource(
    name="endpoints",
    primary_key="id",
    write_disposition=SCD2,
    columns=column_hints(settings.ENDPOINT_COLUMNS, ["id", "project_id", "branch_id"]),
)
def endpoints(estate: Estate) -> Iterator[list[dict]]:
    """Computes (read-write and read-only endpoints), one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for _, computes, fresh in estate.endpoints():
        if computes:
            rows = [pick(e, settings.ENDPOINT_COLUMNS) for e in computes] if fresh else computes
            yield _counted(estate, "endpoints", rows)


@dlt.resource(
    name="endpoint_snapshots",
    primary_key=["endpoint_id", "snapshot_date"],
    write_disposition="merge",
    columns={**column_hints(settings.ENDPOINT_SNAPSHOT_COLUMNS), **SNAPSHOT_HINTS},
)
def endpoint_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Compute state and activity, one row per compute and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, computes, fresh in estate.endpoints():
        if not fresh:
            continue
        rows = [
            _snapshot(estate, "endpoint_id", e, settings.ENDPOINT_SNAPSHOT_COLUMNS, project_id=project_id)
            for e in computes
        ]
        if rows:
            yield _counted(estate, "endpoint_snapshots", rows)


def _per_branch(estate: Estate, table: str, route: str, key: str, columns: dict[str, str]):
    """A branch's databases or roles: read when the plan says so, else carried from the warehouse
    with the time they were last confirmed."""
    previous = estate.planner().previous
    wanted: list[tuple[str, str]] = []
    carried: list[dict] = []
    for project_id, branch_id, _, reason in estate.contents():
        if reason is None:
            assert previous is not None
            carried.extend(previous.contents(table, branch_id))
        else:
            wanted.append((project_id, branch_id))
    if carried:
        yield _counted(estate, table, carried)

    def fetch(ids: tuple[str, str]) -> list[dict]:
        project_id, branch_id = ids
        body = estate.client.get(route, project_id=project_id, branch_id=branch_id)
        return [
            dict(pick(item, columns), project_id=project_id, confirmed_at=estate.run_at)
            for item in body.get(key) or []
        ]

    def one(ids: tuple[str, str]) -> list[dict]:
        return estate.children(fetch, ids)

    for rows in fan_out(one, wanted, estate.workers):
        if rows:
            yield _counted(estate, table, rows)


@dlt.resource(
    name="databases",
    primary_key="id",
    write_disposition="replace",
    columns={
        **column_hints({**settings.DATABASE_COLUMNS, "project_id": "text"}, ["id", "branch_id"]),
        **CONFIRMED_AT_HINT,
    },
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
    columns={
        **column_hints({**settings.ROLE_COLUMNS, "project_id": "text"}, ["branch_id", "name"]),
        **CONFIRMED_AT_HINT,
    },
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


def _refused(estate: Estate, what: str, exc: NeonAPIError) -> None:
    """A listing the key or plan is refused (403): noted once per listing, never fatal."""
    estate._once(f"refused:{what}", lambda: estate.stats.note(f"{what} not read: Neon answered {exc.status}"))


@dlt.resource(
    name="backup_snapshots",
    primary_key="id",
    write_disposition="replace",
    columns={
        **column_hints(
            {**settings.SNAPSHOT_COLUMNS, "project_id": "text"}, ["id", "project_id", "name", "created_at"]
        ),
        **CONFIRMED_AT_HINT,
    },
)
def backup_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Neon's snapshots of each project (point-in-time copies, manual or scheduled), read on every
    run: they are taken and expire on a schedule, with no operation to say so."""
    yield dlt.mark.materialize_table_schema()

    def fetch(project_id: str) -> list[dict]:
        try:
            body = estate.client.get(settings.SNAPSHOTS_ROUTE, project_id=project_id)
        except NeonForbidden as exc:
            _refused(estate, "snapshots", exc)
            return []
        return [
            dict(pick(item, settings.SNAPSHOT_COLUMNS), project_id=project_id, confirmed_at=estate.run_at)
            for item in body.get("snapshots") or []
        ]

    for rows in fan_out(lambda pid: estate.children(fetch, pid), estate.project_ids(), estate.workers):
        if rows:
            yield _counted(estate, "backup_snapshots", rows)


@dlt.resource(
    name="backup_schedules",
    primary_key="branch_id",
    write_disposition="merge",
    columns={
        **column_hints(
            {"branch_id": "text", "project_id": "text", **settings.BACKUP_SCHEDULE_COLUMNS},
            ["branch_id", "project_id", "schedule"],
        ),
        **CONFIRMED_AT_HINT,
    },
)
def backup_schedules(estate: Estate) -> Iterator[list[dict]]:
    """Each root branch's backup schedule (`schedule`: [] when it has none), read with its
    project's branch listing; a carried project's rows stay as last confirmed (merge)."""
    yield dlt.mark.materialize_table_schema()
    roots = [
        (project_id, branch["id"])
        for project_id, branches, fresh in estate.branches()
        if fresh
        for branch in branches
        if not branch.get("parent_id")
    ]

    def fetch(ids: tuple[str, str]) -> list[dict]:
        project_id, branch_id = ids
        try:
            body = estate.client.get(
                settings.BACKUP_SCHEDULE_ROUTE, project_id=project_id, branch_id=branch_id
            )
        except NeonForbidden as exc:
            _refused(estate, "backup schedules", exc)
            return []
        row = {"branch_id": branch_id, "project_id": project_id, "confirmed_at": estate.run_at}
        return [dict(row, schedule=body.get("schedule") or [])]

    for rows in fan_out(lambda ids: estate.children(fetch, ids), roots, estate.workers):
        if rows:
            yield _counted(estate, "backup_schedules", rows)


@dlt.resource(
    name="organization_spending_limits",
    primary_key="org_id",
    write_disposition="replace",
    columns={
        **column_hints({"org_id": "text", **settings.SPENDING_LIMIT_COLUMNS}, ["org_id"]),
        **CONFIRMED_AT_HINT,
    },
)
def organization_spending_limits(estate: Estate) -> Iterator[list[dict]]:
    """Each organization's monthly spending limit in cents (NULL: none set); an organization whose
    plan has none (Neon answers 403: Launch and Scale only) has no row."""
    yield dlt.mark.materialize_table_schema()
    rows = []
    for org_id in estate.org_ids():
        try:
            body = estate.client.get(settings.SPENDING_LIMIT_ROUTE, org_id=org_id)
        except NeonForbidden as exc:
            _refused(estate, "spending limits", exc)
            continue
        rows.append(
            {"org_id": org_id, **pick(body, settings.SPENDING_LIMIT_COLUMNS), "confirmed_at": estate.run_at}
        )
    if rows:
        yield _counted(estate, "organization_spending_limits", rows)


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
    costs one request per project in the usual case. They are also the plan's main signal.
    """
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for ops in estate.operations():
        if ops:
            yield _counted(estate, "operations", ops)


# The consumption tables' columns: the project consumption's (daily and hourly); the branch
# consumption's add `branch_id`.
CONSUMPTION_COLUMNS = {
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
    # dlt's row id, which the source writes itself (_row_ids) rather than dlt's normalize
    "_dlt_id": {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
}

# How a run's consumption lands: it replaces, per organization, the timeframes from the first one
# it read on, and nothing before, so what Neon no longer serves (older than 60 days, 168 hours)
# stays. The rows go in as read, without dlt's deduplication by primary key: a ROW_NUMBER() over
# millions of rows ran DuckDB out of its load budget (the large account's 9 million branch rows),
# and a page never repeats a row. The deletion needs only each organization's first timeframe.
CONSUMPTION_MERGE = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
    "destination_scope": (
        "EXISTS (SELECT 1 FROM (SELECT org_id, MIN(timeframe_start) AS since FROM {staging_table}"
        " GROUP BY org_id) AS reread WHERE reread.org_id = {table}.org_id"
        " AND {table}.timeframe_start >= reread.since)"
    ),
}


# The consumption resources, which the runner may extract and load apart from the others.
CONSUMPTION_RESOURCES = ("consumption", "consumption_hourly", "branch_consumption")


@dlt.resource(
    name="consumption",
    primary_key=["project_id", "timeframe_start", "metric_name"],
    write_disposition=CONSUMPTION_MERGE,
    columns=CONSUMPTION_COLUMNS,
)
def consumption_history(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Daily consumption per project and metric, incrementally by date with a look-back, since
    Neon revises the latest day. Plans without consumption history (403) and rejected ranges (406)
    are noted once and skipped; the rest of the run goes on. Days older than Neon's 60 stay."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if enabled:
        yield from _project_consumption(estate, "consumption", "daily", settings.CONSUMPTION_METRICS)


@dlt.resource(
    name="consumption_hourly",
    primary_key=["project_id", "timeframe_start", "metric_name"],
    write_disposition=CONSUMPTION_MERGE,
    columns=CONSUMPTION_COLUMNS,
)
def consumption_hourly(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Hourly consumption per project of the metrics whose price needs hours
    (settings.HOURLY_CONSUMPTION_METRICS: the extra-branch allowance is per project and hour):
    complete UTC hours only, the last 168 on the first run (Neon serves no older ones), then the
    hours since the last one read minus a short look-back; kept for good, so a year of hours builds
    up. An hour without any (a project within its allowance) has no row: 0 is the same bill, and
    it would be most of the rows. It costs one request per 100 projects, as the daily one."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if enabled:
        yield from _project_consumption(
            estate, "consumption_hourly", "hourly", settings.HOURLY_CONSUMPTION_METRICS
        )


def _project_consumption(estate: Estate, table: str, granularity: str, metrics) -> Iterator[Any]:
    """A project consumption table's rows of every organization, from the timeframe after the last
    one loaded (the resource's state, restored from the warehouse) minus the look-back."""
    loaded_until: dict[str, str] = dlt.current.resource_state().setdefault("loaded_until", {})
    hourly = granularity == "hourly"
    what = "hourly consumption" if hourly else "consumption"
    for org_id in _consumption_org_ids(estate, what):
        params = {
            **_consumption_range(estate, loaded_until.get(org_id), granularity),
            "org_id": org_id,
            "metrics": ",".join(metrics),
            "limit": settings.CONSUMPTION_PAGE_LIMIT,
        }
        latest = loaded_until.get(org_id, "")
        try:
            to_table = functools.partial(_consumption_table, org_id, before=params["to"], drop_zero=hourly)
            for rows in paginate_cursor(
                estate.client, CONSUMPTION_ROUTE, "projects", params, convert=to_table
            ):
                if rows.num_rows:
                    latest = max(latest, _iso(pyarrow.compute.max(rows["timeframe_start"]).as_py()))
                    estate.stats.count_rows(table, rows.num_rows)
                    yield rows
        except NeonAPIError as exc:
            if exc.status not in (403, 404, 406):
                raise
            estate.stats.skipped_optional.append(f"{what} for {org_id}: {exc.status} {exc.detail}")
            continue
        if hourly:  # hours without rows were read too: the last one asked for is loaded
            latest = _iso(_parse_ts(params["to"]) - timedelta(hours=1))
        if latest:
            loaded_until[org_id] = latest


def _consumption_org_ids(estate: Estate, what: str) -> list[str]:
    """The organizations whose consumption to read (an organization key's from its projects);
    none for a personal account, which is noted: consumption history is per organization."""
    org_ids = estate.org_ids()
    if not org_ids:
        estate.stats.skipped_optional.append(f"{what}: needs an organization (personal account)")
    if estate.consumption_orgs is not None:
        org_ids = [org_id for org_id in org_ids if org_id in estate.consumption_orgs]
    return org_ids


def _consumption_range(
    estate: Estate, loaded_until: str | None, granularity: str = "daily"
) -> dict[str, str]:
    """`from`, `to` and `granularity` of a consumption request: complete UTC days (hours) only,
    as far back as Neon serves them (CONSUMPTION_HISTORY_DAYS, HOURLY_CONSUMPTION_HOURS) on the
    first run or with `full_refresh`, and from the last one loaded minus the look-back (Neon
    revises the latest) otherwise."""
    if granularity == "hourly":
        step = timedelta(hours=1)
        end = estate.run_at.replace(minute=0, second=0)
        reach, lookback = settings.HOURLY_CONSUMPTION_HOURS, settings.HOURLY_CONSUMPTION_LOOKBACK_HOURS
    else:
        step = timedelta(days=1)
        end = estate.run_at.replace(hour=0, minute=0, second=0)
        reach, lookback = settings.CONSUMPTION_HISTORY_DAYS, settings.CONSUMPTION_LOOKBACK_DAYS
    start = end - step * (reach - 1)  # a step short of Neon's reach: our clock may run ahead of Neon's
    if loaded_until and not estate.full_refresh:
        start = max(start, _parse_ts(loaded_until) - step * lookback)
    return {"from": _iso(start), "to": _iso(end), "granularity": granularity}


# -------------------------------------------------------------------------- branch consumption


@dlt.resource(
    name="branch_consumption",
    primary_key=["branch_id", "timeframe_start", "metric_name"],
    write_disposition=CONSUMPTION_MERGE,
    columns={**CONSUMPTION_COLUMNS, "branch_id": {"data_type": "text", "nullable": False}},
)
def branch_consumption(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Daily consumption per branch and metric (`GET /consumption_history/v2/branches`), by the
    project consumption's rules: the same days and look-back, complete UTC days only, the days
    read replacing the loaded ones. The endpoint takes 1 to 100 projects a request and serves six of the eight metrics; it
    is for usage-based paid plans, and its history starts when the account first ingested
    branch-level data. A 403 or 404 (plans without it) and a 406 are noted once per organization
    and skipped. A run costs about one request per hundred projects, and a page per thousand
    branches: this route is held to Neon's consumption limit like the project consumption."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if not enabled:
        return
    loaded_until: dict[str, str] = dlt.current.resource_state().setdefault("loaded_until", {})
    org_ids = _consumption_org_ids(estate, "branch consumption")
    batch = settings.BRANCH_CONSUMPTION_PROJECTS_PER_REQUEST

    for org_id in org_ids:
        days = _consumption_range(estate, loaded_until.get(org_id))
        to_table = functools.partial(
            _consumption_table,
            org_id,
            schema=BRANCH_CONSUMPTION_SCHEMA,
            before=days["to"],
            route=settings.CONSUMPTION_BRANCHES_ROUTE,
        )
        project_ids = sorted(p["id"] for p in estate.projects() if p.get("org_id") == org_id)
        latest = loaded_until.get(org_id, "")
        try:
            for first in range(0, len(project_ids), batch):
                params = {
                    **days,
                    "org_id": org_id,
                    "project_ids": ",".join(project_ids[first : first + batch]),
                    "metrics": ",".join(settings.BRANCH_CONSUMPTION_METRICS),
                    "limit": settings.BRANCH_CONSUMPTION_PAGE_LIMIT,
                }
                for rows in paginate_cursor(
                    estate.client, settings.CONSUMPTION_BRANCHES_ROUTE, "branches", params, convert=to_table
                ):
                    if rows.num_rows:
                        latest = max(latest, _iso(pyarrow.compute.max(rows["timeframe_start"]).as_py()))
                        estate.stats.count_rows("branch_consumption", rows.num_rows)
                        yield rows
        except NeonAPIError as exc:
            if exc.status not in (403, 404, 406):
                raise
            estate.stats.skipped_optional.append(
                f"branch consumption for {org_id}: {exc.status} {exc.detail}"
            )
            continue
        if latest:
            loaded_until[org_id] = latest


@dlt.resource(
    name="confirmations",
    primary_key=["object_kind", "object_id"],
    write_disposition="replace",
    columns={
        "object_kind": {"data_type": "text", "nullable": False},
        "object_id": {"data_type": "text", "nullable": False},
        "project_id": {"data_type": "text", "nullable": False},
        "confirmed_at": {"data_type": "timestamp", "nullable": False},
        "reason": {"data_type": "text", "nullable": False},
        "signature": {"data_type": "text"},
        "refresh_due_at": {"data_type": "timestamp", "nullable": False},
    },
)
def confirmations(estate: Estate) -> Iterator[list[dict]]:
    """When the API last confirmed each listing: a project's branches and computes (`object_kind`
    "project"), a branch's databases and roles ("branch"); why it was read then, and when the
    rolling refresh reads it again at the latest. The next run plans from this table."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for rows in estate.confirmations():
        yield _counted(estate, "confirmations", rows)


@dlt.resource(name="confirmations")
def plan_resource(estate: Estate) -> Iterator[list[dict]]:
    """`plan_only`: read the signals and decide the plan; yield nothing, so nothing loads."""
    estate.planner()
    yield from ()


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
        pyarrow.field("_dlt_id", pyarrow.string(), nullable=False),
    ]
)


# The branch consumption's rows: the project consumption's, with the branch beside the project.
BRANCH_CONSUMPTION_SCHEMA = CONSUMPTION_SCHEMA.insert(
    2, pyarrow.field("branch_id", pyarrow.string(), nullable=False)
)


def _consumption_table(
    org_id: str,
    page: list[dict],
    schema: pyarrow.Schema = CONSUMPTION_SCHEMA,
    before: str | None = None,
    drop_zero: bool = False,
    route: str = CONSUMPTION_ROUTE,
) -> pyarrow.Table:
    """One page of consumption, flattened to one row per project (or branch, as `schema` has
    it), timeframe and metric; with `before`, only timeframes that start before it; with
    `drop_zero`, only values other than 0. An Arrow table
    rather than dicts: a large account has about a million of these rows, and dlt writes Arrow
    straight to parquet instead of normalizing row by row."""
    ids = [name for name in ("project_id", "branch_id") if name in schema.names]
    until = _parse_ts(before) if before else None
    columns: dict[str, list] = {name: [] for name in schema.names[:-1]}  # _dlt_id after
    for item in page:
        for period in item.get("periods") or []:
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
                if until is not None and start is not None and start >= until:
                    continue  # a day that has not ended: Neon revises it until it does
                for metric in frame.get("metrics") or []:
                    if drop_zero and not metric["value"]:
                        continue
                    for name, value in zip(
                        schema.names[:-1],
                        (
                            org_id,
                            *(item[key] for key in ids),
                            *period_values,
                            start,
                            end,
                            metric["metric_name"],
                            metric["value"],
                        ),
                        strict=True,
                    ):
                        columns[name].append(value)
    values = _metric_values(columns.pop("value"), columns["metric_name"], route)
    arrays = [pyarrow.array(values, type=schema.field(name).type) for name, values in columns.items()]
    arrays.insert(schema.get_field_index("value"), values)
    return pyarrow.Table.from_arrays([*arrays, _row_ids(len(values))], schema=schema)


def _metric_values(values: list, metric_names: list[str], route: str) -> pyarrow.Array:
    """The metric values as integers, as Neon's spec has them. One sent as a string is read as
    dlt reads a string into an integer column of every other table (`"12"`); anything else fails
    the run naming the metric, rather than leave it out of the totals."""
    try:
        return pyarrow.array(values, type=pyarrow.int64())  # the API's integers: one call
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, OverflowError):
        pass
    typed = []
    for value, metric in zip(values, metric_names, strict=True):
        try:
            typed.append(
                value if value is None else coerce_value("bigint", py_type_to_sc_type(type(value)), value)
            )
        except (ValueError, TypeError, AttributeError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise NeonAPIError(
                route,
                200,
                f"metric {metric} has the value {shown}, not a whole number; Neon's spec says integer",
            ) from None
    return pyarrow.array(typed, type=pyarrow.int64())


# dlt's row id (`_dlt_id`) of a consumption row: random bytes in base64, as dlt's normalize makes
# them, 12 bytes (16 characters, no padding) so that the ids of a page encode in one call.
_ROW_ID_BYTES, _ROW_ID_CHARS = 12, 16


def _row_ids(count: int) -> pyarrow.Array:
    """`count` random row ids as one Arrow string array, built from two buffers instead of a
    Python string per row: dlt's normalize adds them a row at a time and rewrites every parquet
    file for it, which was the normalize's peak on a large account (memory.py)."""
    data = base64.b64encode(secrets.token_bytes(count * _ROW_ID_BYTES))
    offsets = array.array("i", range(0, count * _ROW_ID_CHARS + 1, _ROW_ID_CHARS))
    return pyarrow.StringArray.from_buffers(count, pyarrow.py_buffer(offsets), pyarrow.py_buffer(data))


def _ts_or_none(value: str | None) -> datetime | None:
    return _parse_ts(value) if value else None


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
