"""The estate of one run: the listings several resources share, fetched once and on first use,
and the plan that decides, from Neon's signals and the last run's state in the warehouse, which
of them are read this run and which are carried (incremental.py decides; this module fetches).

Children are fetched concurrently (`fan_out`) under the client's one rate limiter. Per-project
listings are kept as compact JSON: several readers share them (versions, snapshots, per-branch
requests), and decoded dicts of a large account would take several times the memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt

from . import incremental, listings, settings
from .helpers import NeonAPIError, NeonClient, NeonForbidden, NeonNotFound, RunStats, origin_of
from .previous import TABLES as LAST_RUN_TABLES
from .previous import Previous, read_previous
from .reading import fan_out, pages, parse_ts, pick


class Estate:
    """The listings several resources share, fetched once per run and on first use."""

    def __init__(
        self,
        client: NeonClient,
        org_ids: list[str] | None = None,
        workers: int = settings.CONCURRENCY,
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
            orgs = self.client.get(listings.ORGANIZATIONS.route).get(listings.ORGANIZATIONS.envelope) or []
        except NeonForbidden:
            self.org_key = True
            self.stats.note("organization API key: organizations and regions were taken from the projects")
            return []
        if self.wanted_orgs:
            orgs = [o for o in orgs if o["id"] in self.wanted_orgs]
            missing = set(self.wanted_orgs) - {o["id"] for o in orgs}
            if missing:
                raise NeonAPIError(
                    listings.ORGANIZATIONS.route,
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
            params = {"org_id": org_id} if org_id else None
            found = []
            for page in pages(self.client, listings.PROJECTS, params, validate=_complete_listing):
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
        newest: dict[str, str] = dlt.current.resource_state(listings.OPERATIONS.table).setdefault(
            "newest_created_at", {}
        )
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
        stop_before = parse_ts(seen) - lookback if seen else None
        found: list[dict] = []
        listing = pages(self.client, listings.OPERATIONS, project_id=project_id)
        try:
            for page in listing:
                found.extend(pick(op, listings.OPERATIONS.columns) for op in page)
                if stop_before and parse_ts(page[-1]["created_at"]) < stop_before:
                    listing.close()
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
        this_run = incremental.run_record(
            now=self.run_at,
            origin=origin_of(self.client.base_url),
            key_fingerprint=self.client.key_fingerprint,
            org_ids=[o["id"] for o in self.organizations()],
        )
        previous, full_reason = None, incremental.FORCED if self.full_refresh else None
        if full_reason is None:
            previous, full_reason = self._read_previous()
        if full_reason is None:
            full_reason = incremental.full_run_reason(run_state, this_run)
        last_run = run_state.get("last_run_at")
        planner = incremental.Planner(
            previous,
            now=self.run_at,
            full_refresh_days=self.full_refresh_days,
            full_reason=full_reason,
            last_run_at=parse_ts(last_run) if last_run else None,
        )
        for project in self.projects():
            planner.project(project, *self.operations_of(project["id"]))
        run_state.update(this_run)
        self.stats.plan = planner.plan
        return planner

    def _read_previous(self) -> tuple[Previous | None, str | None]:
        """The last published run's confirmations and current rows (the access listings' too),
        from the destination, in one read: whatever part of it fails makes a full run."""
        pipeline = dlt.current.pipeline()
        try:
            with pipeline.sql_client() as client:
                tables = {name: client.make_qualified_table_name(name) for name in LAST_RUN_TABLES}
                return read_previous(lambda sql: client.execute_sql(sql) or [], tables)
        except Exception as exc:  # no destination to read, or rows not as this version writes them
            return None, f"the last run's state could not be read ({type(exc).__name__})"

    # ------------------------------------------------------------------------------ the listings

    def branches(self) -> Iterator[tuple[str, list[dict], bool]]:
        """(project id, its branches, read this run?) for every project. Carried branches have
        their carried columns only (listings.Listing.carried_columns)."""
        return self._listing(listings.BRANCHES, self._fetch_branches)

    def _fetch_branches(self, project_id: str) -> list[dict]:
        """The project's branches, read with `include_deleted=true`: the same request also
        returns the deleted branches still restorable (each with `recovery`), kept aside for
        `deleted_branches`. A key whose account Neon refuses the parameter (a preview feature)
        with a 400 reads without it for the rest of the run."""
        params: dict[str, Any] = {"include_deleted": "true"} if self.include_deleted else {}
        found: list[dict] = []
        try:
            for page in pages(self.client, listings.BRANCHES, params, project_id=project_id):
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
        """(project id, its computes, read this run?) for every project (carried: as branches)."""
        return self._listing(listings.ENDPOINTS, self._fetch_endpoints)

    def _fetch_endpoints(self, project_id: str) -> list[dict]:
        return [
            item for page in pages(self.client, listings.ENDPOINTS, project_id=project_id) for item in page
        ]

    def _listing(self, listing: listings.Listing, fetch) -> Iterator[tuple[str, list[dict], bool]]:
        """A per-project listing, fetched once and kept as compact JSON: three readers share it
        (versions, snapshots, and the per-branch requests), and decoded dicts of a large account
        would take several times the memory. A project the plan carries has its rows from the
        warehouse."""
        fetched = self._once(listing.table, lambda: self._per_project(fetch))
        previous = self.planner().previous
        for project_id, blob in fetched.items():
            if blob is None:
                assert previous is not None
                yield project_id, previous.rows(listing, project_id), False
            else:
                yield project_id, json.loads(blob), True

    def _per_project(self, fetch) -> dict[str, str | None]:
        """Project id -> its listing read this run, or None for a project the plan carries."""
        planner = self.planner()
        listed: dict[str, str | None] = {}
        wanted = []
        for project_id in self.project_ids():
            if planner.plan.projects[project_id].mode == incremental.CARRY:
                listed[project_id] = None
            else:
                wanted.append(project_id)

        def one(project_id: str) -> tuple[str, str]:
            return project_id, json.dumps(self.children(fetch, project_id), separators=(",", ":"))

        for project_id, blob in fan_out(one, wanted, self.workers):
            listed[project_id] = blob
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

    def branch_contents(self, listing: listings.Listing) -> Iterator[list[dict]]:
        """A per-branch listing's rows (databases, roles), a branch at a time: read when the plan
        says so, else carried from the warehouse with the time they were last confirmed."""
        previous = self.planner().previous
        wanted: list[tuple[str, str]] = []
        carried: list[dict] = []
        for project_id, branch_id, _, reason in self.contents():
            if reason is None:
                assert previous is not None
                carried.extend(previous.rows(listing, branch_id))
            else:
                wanted.append((project_id, branch_id))
        if carried:
            yield carried

        def fetch(ids: tuple[str, str]) -> list[dict]:
            project_id, branch_id = ids
            return [
                dict(pick(item, listing.columns), project_id=project_id, confirmed_at=self.run_at)
                for page in pages(self.client, listing, project_id=project_id, branch_id=branch_id)
                for item in page
            ]

        def one(ids: tuple[str, str]) -> list[dict]:
            return self.children(fetch, ids)

        for rows in fan_out(one, wanted, self.workers):
            if rows:
                yield rows

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
