"""What the marts should say, computed straight from a simulated account's served data."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import duckdb

# Columns whose values depend on when a run happened, or when it last read a listing (freshness),
# rather than on what the API served. `carried_forward` counts what a run did not re-read.
RUN_TIME_COLUMN = re.compile(
    r"observed_at|snapshot_at|valid_from|valid_to|loaded_at|load_id|recorded_at|confirmed_at|refresh_due_at"
    r"|carried_forward"
)


def query(warehouse, sql: str, params=None) -> list[tuple]:
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        return connection.execute(sql, params or []).fetchall()
    finally:
        connection.close()


def query_dicts(warehouse, sql: str) -> list[dict]:
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        cursor = connection.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def branch_facts(account) -> dict[str, dict]:
    """Per branch id: the inventory's columns, from the account."""
    facts = {}
    for project in account.all_projects():
        pid = project["id"]
        endpoints = Counter(e["branch_id"] for e in account.endpoints(pid))
        for branch in account.branches(pid):
            bid = branch["id"]
            facts[bid] = {
                "project_id": pid,
                "project_name": project["name"],
                "region_id": project["region_id"],
                "branch_name": branch["name"],
                "parent_branch_id": branch.get("parent_id"),
                "is_default": branch["default"],
                "database_count": len(account.databases(pid, bid)),
                "role_count": len(account.roles(pid, bid)),
                "endpoint_count": endpoints[bid],
                "logical_size_bytes": branch.get("logical_size"),
            }
    return facts


def region_facts(account) -> dict[str, dict]:
    """Per listed region id: counts and totals over the projects that live there."""
    facts = {r["region_id"]: defaultdict(int, region_name=r["name"]) for r in account.regions}
    for project in account.all_projects():
        pid = project["id"]
        region = facts[project["region_id"]]
        region["project_count"] += 1
        for branch in account.branches(pid):
            region["branch_count"] += 1
            region["database_count"] += len(account.databases(pid, branch["id"]))
            region["total_logical_size_bytes"] += branch.get("logical_size") or 0
        region["endpoint_count"] += len(account.endpoints(pid))
    return facts


def marts(warehouse, normal=None) -> dict[str, list[tuple]]:
    """Every mart, as sorted rows of its columns that do not depend on the run's time."""
    return {table: rows for table, (_, rows) in mart_columns_and_rows(warehouse, normal).items()}


def mart_columns_and_rows(warehouse, normal=None) -> dict[str, tuple[list[str], list[tuple]]]:
    """Per mart: the columns that do not depend on the run's time, and its rows sorted, each
    value passed through `normal` when given."""
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [
            t
            for (t,) in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
            ).fetchall()
        ]
        result = {}
        for table in tables:
            columns = [
                c
                for (c,) in connection.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'marts' and table_name = ? order by ordinal_position",
                    [table],
                ).fetchall()
                if not RUN_TIME_COLUMN.search(c)
            ]
            rows = connection.execute(f"select {', '.join(columns)} from marts.{table}").fetchall()
            if normal is not None:
                rows = [tuple(map(normal, row)) for row in rows]
            result[table] = (columns, sorted(rows, key=repr))
        return result
    finally:
        connection.close()
