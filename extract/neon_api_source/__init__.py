"""dlt source for the Neon management API v2: the whole estate of an account.

Loads, into the dataset of the pipeline (`neon_api_data` by convention), one table per Neon listing
(projects, branches, computes, databases, roles, operations, consumption, the access review's
listings...) and tables of daily readings of their volatile counters (`*_snapshots`);
`confirmations` says when the API last confirmed each listing and when it is due again. Each
listing's route, paging, table, columns and how it is carried between runs are one row of
`listings/`.

The package: this module holds the source and its resources; `estate.py` fetches the listings the
resources share and makes the plan (`incremental.py` decides it); `consumption.py` reads and
flattens consumption history; `access.py` the access review; `helpers.py` the HTTP client,
limiter, retries and paging; `configuration.py` the settings and where dlt finds them.

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
and, per project, shares, VPC restrictions and members, with `access_coverage` saying what the
key could not read. Emails land in the email columns only (listings.EMAIL_COLUMNS), hashed with
`hash_emails` (salt: `email_hash_salt`, a secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dlt
from dlt.extract import DltSource

from . import consumption, settings
from . import listings as L
from .access import Access, Emails
from .access import resources as access_resources
from .configuration import NeonApiSourceConfiguration, make_client, resolve, with_settings
from .estate import Estate
from .helpers import NeonAPIError, NeonClient, NeonForbidden, RunStats
from .previous import CONFIRMATION_COLUMNS, CONFIRMATION_REQUIRED, CONFIRMATIONS
from .reading import fan_out, listed_row, pages, pick

__all__ = ["neon_api_source", "CONSUMPTION_RESOURCES", "Estate", "NeonClient", "NeonAPIError", "RunStats"]


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
    if client is None:
        config = resolve(**given)
        client = make_client(config)
    else:  # the client's settings, resolved once where it was made; any given here go on top
        config = with_settings(client.config, **given) if given else client.config
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
        *(every_project_resource(estate, x) for x in L.estate.ROWS if x.reader == L.EVERY_PROJECT),
        backup_schedules(estate),
        organization_spending_limits(estate),
        consumption_history(estate, enabled=consumption),
        consumption_hourly(estate, enabled=consumption),
        branch_consumption(estate, enabled=consumption),
        confirmations(estate),
    ]
    resources += access_resources(Access(estate, emails))  # who can reach the estate
    return resources


def _counted(estate: Estate, table: str, rows: list[dict]) -> list[dict]:
    estate.stats.count_rows(table, len(rows))
    return rows


def _counted_pages(estate: Estate, table: str, batches: Iterator[list[dict]]) -> Iterator[list[dict]]:
    for rows in batches:
        yield _counted(estate, table, rows)


def _snapshot(estate: Estate, listing: L.Listing, record: dict, **ids: Any) -> dict:
    """A record's volatile counters, as its listing's snapshot table holds them for the day."""
    row = {
        listing.snapshot_key: record["id"],
        **ids,
        "snapshot_date": estate.run_at.date(),
        "snapshot_at": estate.run_at,
    }
    row.update(pick(record, listing.volatile))
    return row


# ------------------------------------------------------------------------------------------ resources


@dlt.resource(**L.ORGANIZATIONS.resource_args())
def organizations(estate: Estate) -> Iterator[list[dict]]:
    """The organizations the key can see (taken from the projects for an organization key)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    orgs = [pick(o, L.ORGANIZATIONS.columns) for o in estate.organizations()]
    if estate.org_key:
        names = {p.get("org_id"): p.get("org_name") for p in estate.projects() if p.get("org_id")}
        orgs = [{"id": org_id, "name": name} for org_id, name in sorted(names.items())]
    yield _counted(estate, L.ORGANIZATIONS.table, orgs)


@dlt.resource(**L.REGIONS.resource_args())
def regions(estate: Estate) -> Iterator[list[dict]]:
    """Regions Neon offers, listed per organization and merged. An organization key may not
    list regions: then the regions are the ones its projects live in, without names."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    found: dict[str, dict] = {}
    estate.organizations()  # decides whether this is an organization key
    scopes = [None] if estate.org_key else estate.org_scopes()
    for org_id in scopes:
        try:
            body = estate.client.get(L.REGIONS.route, {"org_id": org_id} if org_id else None)
        except NeonForbidden:
            estate.org_key = True
            break
        for region in body.get(L.REGIONS.envelope) or []:
            found.setdefault(region["region_id"], pick(region, L.REGIONS.columns))
    if estate.org_key:
        for project in estate.projects():
            found.setdefault(project["region_id"], {"region_id": project["region_id"]})
    yield _counted(estate, L.REGIONS.table, sorted(found.values(), key=lambda r: r["region_id"]))


@dlt.resource(**L.PROJECTS.resource_args())
def projects(estate: Estate) -> Iterator[list[dict]]:
    """Projects, one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield _counted(estate, L.PROJECTS.table, [pick(p, L.PROJECTS.columns) for p in estate.projects()])


@dlt.resource(**L.PROJECTS.snapshot_args())
def project_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Project usage counters, one row per project and day (the day's last run wins)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    rows = [_snapshot(estate, L.PROJECTS, p) for p in estate.projects()]
    yield _counted(estate, L.PROJECTS.snapshot_table, rows)


@dlt.resource(**L.BRANCHES.resource_args())
def project_branches(estate: Estate) -> Iterator[list[dict]]:
    """Branches of every project, one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for _, branches, fresh in estate.branches():
        if branches:
            rows = [pick(b, L.BRANCHES.columns) for b in branches] if fresh else branches
            yield _counted(estate, L.BRANCHES.table, rows)


@dlt.resource(**L.BRANCHES.snapshot_args())
def branch_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Branch size and usage counters, one row per branch and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, branches, fresh in estate.branches():
        if not fresh:  # a snapshot is a reading: none for what this run did not read
            continue
        rows = [_snapshot(estate, L.BRANCHES, b, project_id=project_id) for b in branches]
        if rows:
            yield _counted(estate, L.BRANCHES.snapshot_table, rows)


@dlt.resource(**L.DELETED_BRANCHES.resource_args())
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
                **pick(b, L.DELETED_BRANCHES.columns),
                **pick(b["recovery"], L.DELETED_BRANCHES.nested["recovery"][1]),
                "project_id": project_id,
                "confirmed_at": estate.run_at,
            }
            for b in estate.deleted_branches.get(project_id, [])
        ]
        if rows:
            yield _counted(estate, L.DELETED_BRANCHES.table, rows)


@dlt.resource(**L.ENDPOINTS.resource_args())
def endpoints(estate: Estate) -> Iterator[list[dict]]:
    """Computes (read-write and read-only endpoints), one version per change of a stable field."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for _, computes, fresh in estate.endpoints():
        if computes:
            rows = [pick(e, L.ENDPOINTS.columns) for e in computes] if fresh else computes
            yield _counted(estate, L.ENDPOINTS.table, rows)


@dlt.resource(**L.ENDPOINTS.snapshot_args())
def endpoint_snapshots(estate: Estate) -> Iterator[list[dict]]:
    """Compute state and activity, one row per compute and day."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for project_id, computes, fresh in estate.endpoints():
        if not fresh:
            continue
        rows = [_snapshot(estate, L.ENDPOINTS, e, project_id=project_id) for e in computes]
        if rows:
            yield _counted(estate, L.ENDPOINTS.snapshot_table, rows)


@dlt.resource(**L.DATABASES.resource_args())
def databases(estate: Estate) -> Iterator[list[dict]]:
    """Databases of every branch (Neon keeps them per branch, not per project)."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield from _counted_pages(estate, L.DATABASES.table, estate.branch_contents(L.DATABASES))


@dlt.resource(**L.ROLES.resource_args())
def roles(estate: Estate) -> Iterator[list[dict]]:
    """Postgres roles of every branch. Passwords never leave the client."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield from _counted_pages(estate, L.ROLES.table, estate.branch_contents(L.ROLES))


def _note_refusals(estate: Estate, listing: L.Listing, refused: list[int], total: int, parents: str) -> None:
    """Once a listing is read: how many of its `total` parents Neon refused (403, the statuses in
    `refused`), as one note; never fatal. One parent's may be read and another's refused."""
    if refused:
        estate.stats.note(
            f"{listing.noun} not read for {len(refused)} of {total} {parents}: Neon answered {refused[0]}"
        )


def every_project_resource(estate: Estate, listing: L.Listing) -> Any:
    """The resource of a listing read for every project on every run (reader EVERY_PROJECT), made
    from its row: each project's items (its columns, a nested object's, `project_id` and, if the
    table has it, `confirmed_at`); a project deleted since it was listed is skipped, and a refusal
    (403) is noted once."""

    refused: list[int] = []

    def fetch(project_id: str) -> list[dict]:
        try:
            found = [item for page in pages(estate.client, listing, project_id=project_id) for item in page]
        except NeonForbidden as exc:
            refused.append(exc.status)
            return []
        confirmed = {"confirmed_at": estate.run_at} if listing.confirmed else {}
        return [{**listed_row(listing, item), "project_id": project_id, **confirmed} for item in found]

    def rows(estate: Estate) -> Iterator[list[dict]]:
        yield dlt.mark.materialize_table_schema()  # the table exists even when empty
        project_ids = estate.project_ids()
        for found in fan_out(lambda pid: estate.children(fetch, pid), project_ids, estate.workers):
            if found:
                yield _counted(estate, listing.table, found)
        _note_refusals(estate, listing, refused, len(project_ids), "project(s)")

    return dlt.resource(rows, **listing.resource_args())(estate)


@dlt.resource(**L.BACKUP_SCHEDULES.resource_args())
def backup_schedules(estate: Estate) -> Iterator[list[dict]]:
    """Each root branch's backup schedule (`schedule`: [] when it has none), read with its
    project's branch listing; a carried project's rows stay as last confirmed (merge)."""
    yield dlt.mark.materialize_table_schema()
    listing = L.BACKUP_SCHEDULES
    roots = [
        (project_id, branch["id"])
        for project_id, branches, fresh in estate.branches()
        if fresh
        for branch in branches
        if not branch.get("parent_id")
    ]

    refused: list[int] = []

    def fetch(ids: tuple[str, str]) -> list[dict]:
        project_id, branch_id = ids
        try:
            body = estate.client.get(listing.route, project_id=project_id, branch_id=branch_id)
        except NeonForbidden as exc:
            refused.append(exc.status)
            return []
        row = {"branch_id": branch_id, "project_id": project_id, "confirmed_at": estate.run_at}
        return [dict(row, schedule=body.get("schedule") or [])]

    for rows in fan_out(lambda ids: estate.children(fetch, ids), roots, estate.workers):
        if rows:
            yield _counted(estate, listing.table, rows)
    _note_refusals(estate, listing, refused, len(roots), "root branch(es)")


@dlt.resource(**L.ORGANIZATION_SPENDING_LIMITS.resource_args())
def organization_spending_limits(estate: Estate) -> Iterator[list[dict]]:
    """Each organization's monthly spending limit in cents (NULL: none set); an organization whose
    plan has none (Neon answers 403: Launch and Scale only) has no row."""
    yield dlt.mark.materialize_table_schema()
    listing = L.ORGANIZATION_SPENDING_LIMITS
    rows, refused = [], []
    org_ids = estate.org_ids()
    for org_id in org_ids:
        try:
            body = estate.client.get(listing.route, org_id=org_id)
        except NeonForbidden as exc:
            refused.append(exc.status)
            continue
        rows.append({"org_id": org_id, **pick(body, listing.columns), "confirmed_at": estate.run_at})
    if rows:
        yield _counted(estate, listing.table, rows)
    _note_refusals(estate, listing, refused, len(org_ids), "organization(s)")


@dlt.resource(**L.OPERATIONS.resource_args())
def operations(estate: Estate) -> Iterator[list[dict]]:
    """Operations of every project. Neon keeps six months; we keep them all, merging on id.

    Operations come newest first. After the first run, each project is read back only to the
    newest operation seen last time minus a look-back (statuses settle for a while), so a run
    costs one request per project in the usual case. They are also the plan's main signal.
    """
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for ops in estate.operations():
        if ops:
            yield _counted(estate, L.OPERATIONS.table, ops)


# The consumption resources, which the runner may extract and load apart from the others.
CONSUMPTION_RESOURCES = tuple(listing.table for listing in L.consumption.ROWS)


@dlt.resource(**consumption.resource_args(L.CONSUMPTION))
def consumption_history(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Daily consumption per project and metric, incrementally by date with a look-back, since
    Neon revises the latest day. Plans without consumption history (403) and rejected ranges (406)
    are noted once and skipped; the rest of the run goes on. Days older than Neon's 60 stay."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if enabled:
        yield from consumption.read(estate, L.CONSUMPTION, "daily", settings.CONSUMPTION_METRICS)


@dlt.resource(**consumption.resource_args(L.CONSUMPTION_HOURLY))
def consumption_hourly(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Hourly consumption per project of the metrics whose price needs hours
    (settings.HOURLY_CONSUMPTION_METRICS: the extra-branch allowance is per project and hour):
    complete UTC hours only, the last 168 on the first run (Neon serves no older ones), then the
    hours since the last one read minus a short look-back; kept for good, so a year of hours builds
    up. An hour without any (a project within its allowance) has no row: 0 is the same bill, and
    it would be most of the rows. It costs one request per 100 projects, as the daily one."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if enabled:
        yield from consumption.read(
            estate, L.CONSUMPTION_HOURLY, "hourly", settings.HOURLY_CONSUMPTION_METRICS
        )


@dlt.resource(**consumption.resource_args(L.BRANCH_CONSUMPTION))
def branch_consumption(estate: Estate, enabled: bool = True) -> Iterator[Any]:
    """Daily consumption per branch and metric (`GET /consumption_history/v2/branches`), by the
    project consumption's rules: the same days and look-back, complete UTC days only, the days
    read replacing the loaded ones. The endpoint takes 1 to 100 projects a request and serves six
    of the eight metrics; it is for usage-based paid plans, and its history starts when the
    account first ingested branch-level data. A 403 or 404 (plans without it) and a 406 are noted
    once per organization and skipped. A run costs about one request per hundred projects, and a
    page per thousand branches: this route is held to Neon's consumption limit like the project
    consumption."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    if enabled:
        yield from consumption.read(
            estate,
            L.BRANCH_CONSUMPTION,
            "daily",
            settings.BRANCH_CONSUMPTION_METRICS,
            batch=settings.BRANCH_CONSUMPTION_PROJECTS_PER_REQUEST,
        )


@dlt.resource(
    name=CONFIRMATIONS,
    primary_key=["object_kind", "object_id"],
    write_disposition="replace",
    columns=L.column_hints(CONFIRMATION_COLUMNS, CONFIRMATION_REQUIRED),
)
def confirmations(estate: Estate) -> Iterator[list[dict]]:
    """When the API last confirmed each listing: a project's branches and computes (`object_kind`
    "project"), a branch's databases and roles ("branch"); why it was read then, and when the
    rolling refresh reads it again at the latest. The next run plans from this table."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    for rows in estate.confirmations():
        yield _counted(estate, CONFIRMATIONS, rows)


@dlt.resource(name=CONFIRMATIONS)
def plan_resource(estate: Estate) -> Iterator[list[dict]]:
    """`plan_only`: read the signals and decide the plan; yield nothing, so nothing loads."""
    estate.planner()
    yield from ()
