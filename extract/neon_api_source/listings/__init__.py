"""What the source reads from Neon: one row per listing.

Each `Listing` says where a listing lives (route, the key of the body that holds its items, how it
pages and with what page size, its parent), which spec schema its fields come from, the table its
rows land in (primary key, stable columns, and the volatile counters that go to a table of daily
readings instead, `<table>_snapshots`), how its rows are carried between runs, and the word the
progress line uses for it.

From these rows are made: the resources' table hints (`Listing.hints()`), the whole resource of
a plain listing (neon_api_source.access.plain_resource) and of a listing read for every
project (neon_api_source.every_project_resource), the requests' paging (reading.pages), the
progress labels (neon_elt.progress), the simulator's routing (neon_simulator.routing), the routes
held to the consumption limit (limiter.py, and the simulator's limits.py), what is carried between
runs (previous.py: `CARRIED`), and the spec checks of tests/extract/test_raw_schema.py
(`SPEC_SCHEMAS`). The rows live by area: estate.py, consumption.py and access.py here.

This package imports only the standard library, so the simulator reads it without the source's HTTP
machinery. Column types are dlt data types; `json` keeps a free-form map as one JSON column. Each
entity's fields split in two: stable ones, versioned with dlt's scd2 strategy so analysts see when
something was created, changed or deleted, and volatile counters, kept in a table of daily readings
(`*_snapshots`, not Neon's snapshots) so that usage ticking over does not mint a new version on
every run.

Adding a listing Neon serves per organization or per project, read on every run: a row in the
module of its area with `parent`, `route`, `envelope`, `columns` and `spec_schema` (its resource
is made from the row: reader PLAIN for the access review, EVERY_PROJECT for the estate), named in
that module's `ROWS`; the simulator's data for it (a function of the parent, registered in
`Account._listed`, which `Account.listed_under` serves); its dbt source, staging
model and the model's YAML. Neon's snapshots are such a listing: listings/estate.py,
neon_simulator/backups.py, and dbt's `_neon__sources.yml`, `stg_neon__backup_snapshots.sql` and
`_neon__models.yml` (and its line in docs/what-gets-loaded.md).
"""

from __future__ import annotations

from . import access, consumption, estate
from .access import (
    COVERAGE_COLUMNS,
    COVERAGE_REQUIRED,
    COVERAGE_TABLE,
    ORGANIZATION_API_KEYS,
    ORGANIZATION_MEMBERS,
    ORGANIZATION_VPC_ENDPOINTS,
    PROJECT_MEMBERS,
    PROJECT_PERMISSIONS,
    PROJECT_VPC_ENDPOINTS,
)
from .base import (
    ACCESS,
    BRANCH,
    CONSUMPTION_LIMIT,
    CURSOR,
    ESTATE,
    EVERY_PROJECT,
    EVERY_RUN,
    FROM_WAREHOUSE,
    NEWEST,
    NEXT,
    ORG,
    PARENT_ID,
    PLAIN,
    PROJECT,
    SCD2,
    TIMEFRAMES,
    WITH_BRANCH,
    WITH_BRANCH_LISTING,
    WITH_FULL_READING,
    WITH_LISTINGS,
    Listing,
    column_hints,
)
from .consumption import BRANCH_CONSUMPTION, CONSUMPTION, CONSUMPTION_HOURLY
from .estate import (
    BACKUP_SCHEDULES,
    BACKUP_SNAPSHOTS,
    BRANCHES,
    DATABASES,
    DELETED_BRANCHES,
    ENDPOINTS,
    OPERATIONS,
    ORGANIZATION_SPENDING_LIMITS,
    ORGANIZATIONS,
    PROJECTS,
    REGIONS,
    ROLES,
)

__all__ = [
    "ACCESS",
    "BRANCH",
    "CURSOR",
    "ESTATE",
    "EVERY_PROJECT",
    "EVERY_RUN",
    "FROM_WAREHOUSE",
    "NEWEST",
    "NEXT",
    "ORG",
    "PARENT_ID",
    "PLAIN",
    "PROJECT",
    "SCD2",
    "TIMEFRAMES",
    "WITH_BRANCH",
    "WITH_BRANCH_LISTING",
    "WITH_FULL_READING",
    "WITH_LISTINGS",
    "Listing",
    "column_hints",
    "COVERAGE_COLUMNS",
    "COVERAGE_REQUIRED",
    "COVERAGE_TABLE",
    "ORGANIZATIONS",
    "REGIONS",
    "PROJECTS",
    "BRANCHES",
    "DELETED_BRANCHES",
    "ENDPOINTS",
    "DATABASES",
    "ROLES",
    "OPERATIONS",
    "BACKUP_SNAPSHOTS",
    "BACKUP_SCHEDULES",
    "ORGANIZATION_SPENDING_LIMITS",
    "CONSUMPTION",
    "CONSUMPTION_HOURLY",
    "BRANCH_CONSUMPTION",
    "ORGANIZATION_MEMBERS",
    "ORGANIZATION_API_KEYS",
    "ORGANIZATION_VPC_ENDPOINTS",
    "PROJECT_PERMISSIONS",
    "PROJECT_VPC_ENDPOINTS",
    "PROJECT_MEMBERS",
]

LISTINGS: tuple[Listing, ...] = (*estate.ROWS, *consumption.ROWS, *access.ROWS)
BY_TABLE: dict[str, Listing] = {listing.table: listing for listing in LISTINGS}
# The listings whose rows a run carries from the warehouse when the plan does not read them
# (previous.py reads them back).
CARRIED = tuple(listing for listing in LISTINGS if listing.carried in FROM_WAREHOUSE)
# The access review's listings, in the order they are read and loaded; the per-organization ones
# feed the per-project ones (a project's VPC restrictions need its organization's endpoints).
ACCESS_LISTINGS = tuple(listing for listing in LISTINGS if listing.reader in (ACCESS, PLAIN))

# Each route once, with its progress label, in the order the crawl reaches them.
ROUTE_LABELS: dict[str, str] = {}
for _listing in LISTINGS:
    ROUTE_LABELS.setdefault(_listing.route, _listing.label)
# Routes whose body is a bare JSON array, as the spec declares it; the client takes an array from
# these routes only.
ARRAY_BODY_ROUTES = frozenset(
    listing.route for listing in LISTINGS if listing.envelope is None and not listing.one_object
)
# The consumption routes, each held to settings.CONSUMPTION_REQUESTS_PER_MINUTE by the limiter.
CONSUMPTION_ROUTES = tuple(dict.fromkeys(x.route for x in LISTINGS if x.rate_limit == CONSUMPTION_LIMIT))

# Which spec schema each table's API fields come from (checked by tests/extract/test_raw_schema.py): the
# stable and volatile fields together, a nested object's under "<table> (<field>)".
SPEC_SCHEMAS: dict[str, tuple[str, dict[str, str]]] = {}
for _listing in LISTINGS:
    if _listing.spec_schema:
        SPEC_SCHEMAS[_listing.table] = (_listing.spec_schema, {**_listing.columns, **_listing.volatile})
    for _field, (_schema, _columns) in _listing.nested.items():
        SPEC_SCHEMAS[f"{_listing.table} ({_field})"] = (_schema, dict(_columns))

# The only columns that hold email addresses (the spec marks them x-sensitive): with
# `hash_emails` they hold `hmac-sha256:<hex>` of the trimmed, lower-cased address instead.
EMAIL_COLUMNS = {listing.table: listing.emails for listing in LISTINGS if listing.emails}
