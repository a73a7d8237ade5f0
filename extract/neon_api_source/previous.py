"""The last run's state, read back from the warehouse the run loads into: its confirmations, and
the current rows of every listing an incremental run carries forward (listings.CARRIED: branches,
computes, databases, roles, the per-project access listings). Read once per run (estate.py), so
a run that is not published leaves it as it was; incremental.py plans from it."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import listings
from .reading import parse_ts

FIRST_RUN = "first run"
# The `confirmations` table (a `Confirmation` a row): column -> dlt type; only `signature` may be
# null.
CONFIRMATIONS = "confirmations"
CONFIRMATION_COLUMNS = {
    "object_kind": "text",
    "object_id": "text",
    "project_id": "text",
    "confirmed_at": "timestamp",
    "reason": "text",
    "signature": "text",
    "refresh_due_at": "timestamp",
}
CONFIRMATION_REQUIRED = tuple(name for name in CONFIRMATION_COLUMNS if name != "signature")
# The tables read back: the confirmations and the loads they came from, each carried listing's,
# the access listings' coverage, and the organizations' VPC endpoints (a change of them re-reads
# their projects' restrictions).
TABLES = (
    CONFIRMATIONS,
    "_dlt_loads",
    *(listing.table for listing in listings.CARRIED),
    listings.COVERAGE_TABLE,
    listings.ORGANIZATION_VPC_ENDPOINTS.table,
)
_CARRIED_ACCESS = {x.table for x in listings.CARRIED} & {x.table for x in listings.ACCESS_LISTINGS}


@dataclass
class Confirmation:
    """When the API last confirmed a listing. `object_kind` "project": the project's branches and
    computes; "branch": the branch's databases and roles. Its fields are the table's columns."""

    object_kind: str
    object_id: str
    project_id: str
    confirmed_at: datetime
    reason: str
    signature: str | None
    refresh_due_at: datetime

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONFIRMATION_COLUMNS}


@dataclass
class Previous:
    """What the last published run left in the warehouse: its confirmations, and the current rows
    of each carried listing by parent (as compact JSON: a large account has many)."""

    projects: dict[str, Confirmation] = field(default_factory=dict)  # project id -> its confirmation
    branches_confirmed: dict[str, dict[str, Confirmation]] = field(default_factory=dict)  # by project
    # table -> parent id -> [[value of each carried column but the parent's id, ...], ...]
    carried_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    # per-project access listing and project: its coverage row (read or refused, when, why)
    access_coverage: dict[tuple[str, str], dict] = field(default_factory=dict)  # (listing, project id) -> row
    org_vpc_endpoints: dict[str, list[str]] = field(default_factory=dict)  # org id -> endpoint ids, sorted

    def rows(self, listing: listings.Listing, parent_id: str) -> list[dict]:
        """A carried listing's rows of one project (or branch), as the warehouse holds them."""
        key = listings.PARENT_ID[listing.parent]
        names = [name for name in listing.carried_columns() if name != key]
        return [
            {**{n: v for n, v in zip(names, values, strict=True) if v is not None}, key: parent_id}
            for values in json.loads(self.carried_rows.get(listing.table, {}).get(parent_id, "[]"))
        ]

    def branch(self, project_id: str, branch_id: str | None) -> Confirmation | None:
        return self.branches_confirmed.get(project_id, {}).get(branch_id or "")

    def matches(self, project_id: str) -> bool:
        """The warehouse holds exactly the branches the project's last confirmation saw."""
        current = {row["id"] for row in self.rows(listings.BRANCHES, project_id)}
        return bool(current) and current == set(self.branches_confirmed.get(project_id, {}))

    def carried(self, listing: listings.Listing, project_id: str) -> tuple[list[dict], dict]:
        """A per-project access listing's rows and coverage row, as the warehouse holds them."""
        return self.rows(listing, project_id), self.access_coverage[(listing.table, project_id)]

    def oldest(self, project_id: str) -> datetime:
        """The project's oldest confirmation: its listings', or one of its branches'."""
        return min(
            [self.projects[project_id].confirmed_at]
            + [c.confirmed_at for c in self.branches_confirmed.get(project_id, {}).values()]
        )


def compact(value: Any) -> str:
    """JSON without spaces: how carried rows are kept until a resource hands them over."""
    return json.dumps(value, separators=(",", ":"), default=str)


def read_previous(sql: Any, tables: Mapping[str, str]) -> tuple[Previous | None, str | None]:
    """The previous run's state, or (None, why a full run is needed). A query that fails past the
    confirmations (a table or column missing) raises: the caller makes that a full run too.

    `sql(query)` returns rows as tuples; `tables` maps each of `TABLES` to its qualified name.
    """
    try:
        rows = sql(
            f"select {', '.join(f'c.{_quoted(name)}' for name in CONFIRMATION_COLUMNS)}, l.load_id "
            f"from {tables[CONFIRMATIONS]} as c "
            f"left join {tables['_dlt_loads']} as l on l.load_id = c._dlt_load_id and l.status = 0"
        )
    except Exception:  # no such table
        rows = []
    if not rows:
        try:
            sql(f"select 1 from {tables[listings.BRANCHES.table]} limit 1")
        except Exception:  # nothing loaded yet
            return None, FIRST_RUN
        return None, "the last run's confirmations are missing"
    if any(row[-1] is None for row in rows):
        return None, "the last run's load did not complete"
    previous = Previous()
    for *values, _ in rows:
        row = dict(zip(CONFIRMATION_COLUMNS, values, strict=True))
        moments = {name: utc(row[name]) for name in ("confirmed_at", "refresh_due_at")}
        confirmation = Confirmation(**{**row, **moments})
        if confirmation.object_kind == "project":
            previous.projects[confirmation.object_id] = confirmation
        else:
            previous.branches_confirmed.setdefault(confirmation.project_id, {})[confirmation.object_id] = (
                confirmation
            )
    for listing in listings.CARRIED:
        previous.carried_rows[listing.table] = _carried_rows(sql, tables[listing.table], listing)
    _read_access(previous, sql, tables)
    return previous, None


def _carried_rows(sql: Any, table: str, listing: listings.Listing) -> dict[str, str]:
    """A carried listing's current rows by parent id: each row's carried columns but the parent's."""
    names = listing.carried_columns()
    at = names.index(listings.PARENT_ID[listing.parent])
    current = " where _dlt_valid_to is null" if listing.disposition == listings.SCD2 else ""
    grouped: dict[str, list] = defaultdict(list)
    for values in sql(_select(table, names) + current):
        row = list(values)
        grouped[row.pop(at)].append(row)
    return {parent_id: compact(rows) for parent_id, rows in grouped.items()}


def _quoted(name: str) -> str:
    return f'"{name}"'


def _select(table: str, names: list[str] | tuple[str, ...]) -> str:
    return f"select {', '.join(_quoted(n) for n in names)} from {table}"


def utc(value: str | datetime) -> datetime:
    """A moment as the warehouse or Neon gives it (naive: UTC), as an aware UTC datetime."""
    moment = parse_ts(value) if isinstance(value, str) else value
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_access(previous: Previous, sql: Any, tables: Mapping[str, str]) -> None:
    """The coverage of the carried access listings, and the organizations' VPC endpoints."""
    coverage_columns = list(listings.COVERAGE_COLUMNS)
    for values in sql(_select(tables[listings.COVERAGE_TABLE], coverage_columns)):
        row = dict(zip(coverage_columns, values, strict=True))
        if row["listing"] in _CARRIED_ACCESS:
            previous.access_coverage[(row["listing"], row["scope_id"])] = {
                k: v for k, v in row.items() if v is not None
            }
    vpc_endpoints = tables[listings.ORGANIZATION_VPC_ENDPOINTS.table]
    for org_id, endpoint_id in sql(_select(vpc_endpoints, ["org_id", "vpc_endpoint_id"])):
        previous.org_vpc_endpoints.setdefault(org_id, []).append(endpoint_id)
    for endpoints in previous.org_vpc_endpoints.values():
        endpoints.sort()
