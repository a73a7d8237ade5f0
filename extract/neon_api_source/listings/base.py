"""The shape of a listing's description (`Listing`) and the words its rows are written in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# The parents a listing is read under, and the column that holds the parent's id.
ORG, PROJECT, BRANCH = "organization", "project", "branch"
PARENT_ID = {ORG: "org_id", PROJECT: "project_id", BRANCH: "branch_id"}
# How a listing pages: Neon's `pagination.cursor` (always sent, also after the last page),
# `pagination.next` (sent only while more remain), or not at all.
CURSOR, NEXT = "cursor", "next"
# How a listing's rows get from one run to the next; the plan (incremental.py) says when each is
# read. EVERY_RUN: read on every run. WITH_LISTINGS: read when its project's listings are, else
# carried from the warehouse. WITH_FULL_READING: read with its project's full reading, else
# carried. WITH_BRANCH: read when its branch changed, else carried. Those three (`FROM_WAREHOUSE`)
# are read back by previous.py, their `carried_columns()`. WITH_BRANCH_LISTING: read with its
# project's branch listing; rows merge, so a carried project's stay as confirmed. NEWEST: read
# back to the newest seen minus a look-back, merged on id. TIMEFRAMES: new timeframes and a
# look-back; older ones stay.
EVERY_RUN, NEWEST, TIMEFRAMES = "every run", "newest", "timeframes"
WITH_LISTINGS, WITH_FULL_READING, WITH_BRANCH = "with listings", "with full reading", "with branch"
WITH_BRANCH_LISTING = "with branch listing"
FROM_WAREHOUSE = (WITH_LISTINGS, WITH_FULL_READING, WITH_BRANCH)
# Who reads a listing: the estate (estate.py), the access review by hand (access.py), or a
# generic reader whose resource is made from the listing's row: a plain listing's, refusals kept
# in `access_coverage` (access.plain_resource), or a per-project listing of the estate's, read for
# every project on every run, refusals noted once (neon_api_source.every_project_resource).
ESTATE, ACCESS, PLAIN, EVERY_PROJECT = "estate", "access", "plain", "every project"
# The rate limits a route is held to (limiter.neon_rate_limiter).
ACCOUNT_LIMIT, CONSUMPTION_LIMIT = "account", "consumption"
SCD2 = {"disposition": "merge", "strategy": "scd2"}

# When the API last returned a row: carried rows keep theirs (incremental runs).
CONFIRMED_AT_HINT = {"confirmed_at": {"data_type": "timestamp", "nullable": False}}


def column_hints(columns: Mapping[str, str], nullable_except: Iterable[str] = ()) -> dict:
    """dlt column hints for a table shape: every declared column exists even when the API omits
    the field on every row of a run."""
    required = set(nullable_except)
    return {
        name: {"data_type": data_type, "nullable": name not in required}
        for name, data_type in columns.items()
    }


@dataclass
class Listing:
    """One Neon listing and the table it lands in. Not frozen: tests shrink `page_limit` to page
    through small accounts."""

    table: str
    route: str
    label: str  # the progress line's word for the route
    envelope: str | None  # the key of the body holding the items; None: the body is a JSON array
    primary_key: tuple[str, ...]
    columns: Mapping[str, str]  # the API fields kept (the stable ones where there is a snapshot)
    required: tuple[str, ...] = ()  # columns never null
    parent: str | None = None
    paginator: str | None = None
    page_limit: int | None = None  # the largest page the route accepts (spec: `limit` maximum)
    spec_schema: str | None = None
    nested: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)
    # field -> (its spec schema, its columns): a nested object's fields, kept as columns
    added: Mapping[str, str] = field(default_factory=dict)  # columns the source adds (parent ids)
    confirmed: bool = False  # has `confirmed_at`: when the API last returned the row
    disposition: str | Mapping = "replace"
    carried: str = EVERY_RUN
    volatile: Mapping[str, str] = field(default_factory=dict)  # counters, to `snapshot_table`
    snapshot_table: str | None = None
    snapshot_key: str | None = None  # the snapshot table's id column
    rate_limit: str = ACCOUNT_LIMIT
    emails: str | None = None  # the column holding an email address (hashed with `hash_emails`)
    reader: str = PLAIN
    one_object: bool = False  # the route answers one object (its columns), not a list
    org_projects_only: bool = False  # a per-project listing Neon serves for organization projects only
    noun: str = ""  # what the run summary and `access_coverage` call it (default: the table's words)

    def __post_init__(self) -> None:
        self.noun = self.noun or self.table.replace("_", " ")

    def hints(self) -> dict:
        """The table's dlt column hints."""
        nested = {name: kind for _, columns in self.nested.values() for name, kind in columns.items()}
        hints = column_hints({**self.columns, **nested, **self.added}, self.required)
        return {**hints, **CONFIRMED_AT_HINT} if self.confirmed else hints

    def resource_args(self) -> dict:
        """`dlt.resource` arguments for the table."""
        key = self.primary_key[0] if len(self.primary_key) == 1 else list(self.primary_key)
        return {
            "name": self.table,
            "primary_key": key,
            "write_disposition": self.disposition,
            "columns": self.hints(),
        }

    def carried_columns(self) -> tuple[str, ...]:
        """The columns a run reads back from the warehouse to carry the table's rows: of an scd2
        table's current version, its required columns (dlt refuses a row without them) and
        `_dlt_id`, the hash that keeps the version current; of any other table, the whole row."""
        if self.disposition == SCD2:
            return (*self.required, "_dlt_id")
        return tuple(self.hints())

    def snapshot_args(self) -> dict:
        """`dlt.resource` arguments for the table of daily readings of the volatile counters."""
        return {
            "name": self.snapshot_table,
            "primary_key": [self.snapshot_key, "snapshot_date"],
            "write_disposition": "merge",
            "columns": {**column_hints(self.volatile), **SNAPSHOT_HINTS},
        }


SNAPSHOT_HINTS = {
    "snapshot_date": {"data_type": "date", "nullable": False},
    "snapshot_at": {"data_type": "timestamp", "nullable": False},
}
