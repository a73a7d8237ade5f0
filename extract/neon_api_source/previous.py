"""The last run's state, read back from the warehouse the run loads into: its confirmations, the
current rows an incremental run carries forward (branches, computes, databases, roles), and the
per-project access listings. Read once per run (estate.py), so a run that is not published
leaves it as it was; incremental.py plans from it."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import listings

FIRST_RUN = "first run"
# The per-project access listings carried between runs (access.py reads them, incremental.py says when).
PROJECT_ACCESS_LISTINGS = ("project_permissions", "project_vpc_endpoints")


@dataclass
class Confirmation:
    """When the API last confirmed a listing. `kind` "project": the project's branches and computes;
    `kind` "branch": the branch's databases and roles."""

    kind: str
    object_id: str
    project_id: str
    confirmed_at: datetime
    reason: str
    signature: str | None
    refresh_due_at: datetime

    def row(self) -> dict[str, Any]:
        return {
            "object_kind": self.kind,
            "object_id": self.object_id,
            "project_id": self.project_id,
            "confirmed_at": self.confirmed_at,
            "reason": self.reason,
            "signature": self.signature,
            "refresh_due_at": self.refresh_due_at,
        }


@dataclass
class Previous:
    """What the last published run left in the warehouse: its confirmations, and per project the
    current rows an incremental run carries forward (as compact JSON: a large account has many),
    its access listings (access.py) among them."""

    projects: dict[str, Confirmation] = field(default_factory=dict)  # project id -> its confirmation
    branches_confirmed: dict[str, dict[str, Confirmation]] = field(default_factory=dict)  # by project
    branches: dict[str, str] = field(default_factory=dict)  # project id -> [[id, _dlt_id], ...]
    endpoints: dict[str, str] = field(default_factory=dict)  # project id -> [[id, branch id, _dlt_id], ...]
    databases: dict[str, str] = field(default_factory=dict)  # branch id -> [row, ...]
    roles: dict[str, str] = field(default_factory=dict)  # branch id -> [row, ...]
    # per-project access listing and project: its coverage row (read or refused, when, why), its rows
    access_coverage: dict[tuple[str, str], dict] = field(default_factory=dict)  # (listing, project id) -> row
    # listing -> project id -> [row, ...]
    access_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    org_vpc_endpoints: dict[str, list[str]] = field(default_factory=dict)  # org id -> endpoint ids, sorted

    def branch_rows(self, project_id: str) -> list[list[str]]:
        return json.loads(self.branches.get(project_id, "[]"))

    def endpoint_rows(self, project_id: str) -> list[list[str]]:
        return json.loads(self.endpoints.get(project_id, "[]"))

    def contents(self, table: str, branch_id: str) -> list[dict]:
        return json.loads(getattr(self, table).get(branch_id, "[]"))

    def branch(self, project_id: str, branch_id: str | None) -> Confirmation | None:
        return self.branches_confirmed.get(project_id, {}).get(branch_id or "")

    def matches(self, project_id: str) -> bool:
        """The warehouse holds exactly the branches the project's last confirmation saw."""
        current = {row[0] for row in self.branch_rows(project_id)}
        return bool(current) and current == set(self.branches_confirmed.get(project_id, {}))

    def carried(self, listing: str, project_id: str) -> tuple[list[dict], dict]:
        """A per-project access listing's rows and coverage row, as the warehouse holds them."""
        rows = json.loads(self.access_rows.get(listing, {}).get(project_id, "[]"))
        return rows, self.access_coverage[(listing, project_id)]

    def oldest(self, project_id: str) -> datetime:
        """The project's oldest confirmation: its listings', or one of its branches'."""
        return min(
            [self.projects[project_id].confirmed_at]
            + [c.confirmed_at for c in self.branches_confirmed.get(project_id, {}).values()]
        )


def compact(value: Any) -> str:
    """JSON without spaces: how carried rows are kept until a resource hands them over."""
    return json.dumps(value, separators=(",", ":"), default=str)


def read_previous(
    sql: Any, tables: Mapping[str, str], access_columns: Mapping[str, list[str]]
) -> tuple[Previous | None, str | None]:
    """The previous run's state, or (None, why a full run is needed). A query that fails past the
    confirmations (a table or column missing) raises: the caller makes that a full run too.

    `sql(query)` returns rows as tuples; `tables` maps a raw table name to its qualified name;
    `access_columns` names the columns carried of each access table (access.CARRIED_COLUMNS).
    """
    try:
        rows = sql(
            f"select c.object_kind, c.object_id, c.project_id, c.confirmed_at, c.reason, c.signature, "
            f"c.refresh_due_at, l.load_id from {tables['confirmations']} as c "
            f"left join {tables['_dlt_loads']} as l on l.load_id = c._dlt_load_id and l.status = 0"
        )
    except Exception:  # no such table
        rows = []
    if not rows:
        try:
            sql(f"select 1 from {tables['project_branches']} limit 1")
        except Exception:  # nothing loaded yet
            return None, FIRST_RUN
        return None, "the last run's confirmations are missing"
    if any(row[7] is None for row in rows):
        return None, "the last run's load did not complete"
    previous = Previous()
    for kind, object_id, project_id, confirmed_at, reason, signature, due, _ in rows:
        confirmation = Confirmation(
            kind, object_id, project_id, utc(confirmed_at), reason, signature, utc(due)
        )
        if kind == "project":
            previous.projects[object_id] = confirmation
        else:
            previous.branches_confirmed.setdefault(project_id, {})[object_id] = confirmation
    grouped: dict[str, list] = defaultdict(list)
    for branch_id, project_id, row_hash in sql(
        f"select id, project_id, _dlt_id from {tables['project_branches']} where _dlt_valid_to is null"
    ):
        grouped[project_id].append([branch_id, row_hash])
    previous.branches = {pid: compact(rows) for pid, rows in grouped.items()}
    grouped = defaultdict(list)
    for endpoint_id, project_id, branch_id, row_hash in sql(
        f"select id, project_id, branch_id, _dlt_id from {tables['endpoints']} where _dlt_valid_to is null"
    ):
        grouped[project_id].append([endpoint_id, branch_id, row_hash])
    previous.endpoints = {pid: compact(rows) for pid, rows in grouped.items()}
    for listing in (listings.DATABASES, listings.ROLES):
        table, columns = listing.table, listing.columns
        names = [*columns, "project_id", "confirmed_at"]
        by_branch: dict[str, list] = defaultdict(list)
        for values in sql(_select(tables[table], names)):
            row = {n: v for n, v in zip(names, values, strict=True) if v is not None}
            by_branch[row["branch_id"]].append(row)
        setattr(previous, table, {bid: compact(rows) for bid, rows in by_branch.items()})
    _read_access(previous, sql, tables, access_columns)
    return previous, None


def _quoted(name: str) -> str:
    return f'"{name}"'


def _select(table: str, names: list[str]) -> str:
    return f"select {', '.join(_quoted(n) for n in names)} from {table}"


def utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _read_access(
    previous: Previous, sql: Any, tables: Mapping[str, str], columns: Mapping[str, list[str]]
) -> None:
    """The per-project access listings the warehouse holds, and its organizations' VPC endpoints
    (a change of them re-reads their projects' restrictions)."""
    coverage_columns = columns["access_coverage"]
    for values in sql(_select(tables["access_coverage"], coverage_columns)):
        row = dict(zip(coverage_columns, values, strict=True))
        if row["listing"] in PROJECT_ACCESS_LISTINGS:
            previous.access_coverage[(row["listing"], row["scope_id"])] = {
                k: v for k, v in row.items() if v is not None
            }
    for listing in PROJECT_ACCESS_LISTINGS:
        grouped: dict[str, list] = defaultdict(list)
        for values in sql(_select(tables[listing], columns[listing])):
            row = {n: v for n, v in zip(columns[listing], values, strict=True) if v is not None}
            grouped[row["project_id"]].append(row)
        previous.access_rows[listing] = {pid: compact(rows) for pid, rows in grouped.items()}
    for org_id, endpoint_id in sql(
        _select(tables["organization_vpc_endpoints"], ["org_id", "vpc_endpoint_id"])
    ):
        previous.org_vpc_endpoints.setdefault(org_id, []).append(endpoint_id)
    for endpoints in previous.org_vpc_endpoints.values():
        endpoints.sort()
