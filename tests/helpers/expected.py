"""What the marts should say, computed straight from a simulated account's served data."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime

import duckdb
import yaml
from neon_elt.config import DBT_PROJECT_DIR

# Columns whose values depend on when a run happened, or when it last read a listing (freshness),
# rather than on what the API served. `carried_forward` counts what a run did not re-read.
RUN_TIME_COLUMN = re.compile(
    r"observed_at|snapshot_at|valid_from|valid_to|loaded_at|load_id|recorded_at|confirmed_at|refresh_due_at"
    r"|carried_forward"
)


def dbt_vars() -> dict:
    """The dbt vars as dbt_project.yml sets them: what the marts use unless a run passes others."""
    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


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


def account_totals(account) -> dict[str, int]:
    """The account's headline as served (marts.estate's names): its regions' facts summed, and how
    many of the listed regions hold a project."""
    regions = region_facts(account).values()
    return {
        **{
            key: sum(region[key] for region in regions)
            for key in ("project_count", "branch_count", "endpoint_count", "database_count")
        },
        "logical_size_bytes": sum(region["total_logical_size_bytes"] for region in regions),
        "regions_in_use_count": sum(1 for region in regions if region["project_count"]),
        "region_count": len(regions),
    }


def float_sum(value):
    """A float to 12 significant digits: DuckDB adds a column's doubles in whatever order its
    threads meet them, so the same sum can differ in its last bits from one build to the next."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def marts(warehouse, normal=None) -> dict[str, list[tuple]]:
    """Every mart, as sorted rows of its columns that do not depend on the run's time."""
    return {table: rows for table, (_, rows) in mart_columns_and_rows(warehouse, normal).items()}


def mart_columns_and_rows(warehouse, normal=None) -> dict[str, tuple[list[str], list[tuple]]]:
    """Per mart: the columns that do not depend on the run's time, and its rows sorted, each
    float to 12 significant digits (float_sum) and each value passed through `normal` when given."""
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
            rows = [tuple(float_sum(v) for v in row) for row in rows]
            if normal is not None:
                rows = [tuple(map(normal, row)) for row in rows]
            result[table] = (columns, sorted(rows, key=repr))
        return result
    finally:
        connection.close()


# ------------------------------------------------------------------- who can reach the estate


def marts_timestamp(value: str | None) -> datetime | None:
    """An API timestamp as the marts hold it: a naive UTC datetime."""
    return naive_utc(datetime.fromisoformat(value.replace("Z", "+00:00"))) if value else None


def naive_utc(moment: datetime) -> datetime:
    """A datetime as the marts hold it: naive UTC (a naive one is taken as UTC already)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def unbilled_org_names(account) -> list[str]:
    """The names of the organizations the account serves no consumption history for (their plan
    has none), sorted: the ones with no bill, which the summary, report and notebook name."""
    return sorted(o["name"] for o in account.organizations if o["id"] not in account.plan_org_ids())


def visible_to_the_personal_key(account, org_id: str) -> dict[str, bool]:
    """Which organization-wide access listings the simulator lets the personal key read."""
    admin = account.org_role(org_id) == "admin"
    return {"members": True, "api_keys": admin, "vpc_endpoints": admin and org_id in account.plan_org_ids()}


def access_review_rows(account, keys_read_at, unused_after_days: int, max_admins: int) -> dict[str, dict]:
    """Per grant id: the access_review mart's row, from what the simulator served to its personal
    key. `keys_read_at` is when the run read the API keys: "unused for N days" counts to it."""
    rows = {}
    for org in account.organizations:
        org_id = org["id"]
        members = account.members(org_id)
        emails = {m["member"]["user_id"]: m["user"]["email"].lower() for m in members}
        admins = sum(
            1 for m in members if m["member"]["role"] == "admin" and "deactivated_at" not in m["user"]
        )
        for m in members:
            active = "deactivated_at" not in m["user"]
            no_mfa = active and m["user"].get("has_mfa") is False
            excess = active and m["member"]["role"] == "admin" and admins > max_admins
            reasons = (["active member without MFA"] if no_mfa else []) + (
                [f"one of {admins} admins (more than {max_admins})"] if excess else []
            )
            rows[f"member/{m['member']['id']}"] = dict(
                org_id=org_id,
                project_id=None,
                principal=m["user"]["email"].lower(),
                member_role=m["member"]["role"],
                is_active=active,
                is_outside_org=False,
                is_flagged_without_mfa=no_mfa,
                is_flagged_unused_key=False,
                is_flagged_outside_share=False,
                is_flagged_excess_admin=excess,
                review_reasons="; ".join(reasons) or None,
                last_used_at=None,
                days_since_last_use=None,
                created_by=None,
            )
        if not visible_to_the_personal_key(account, org_id)["api_keys"]:
            continue
        for key in account.org_api_keys(org_id):
            used = marts_timestamp(key.get("last_used_at"))
            days = (keys_read_at.date() - used.date()).days if used else None
            unused = used is None or days >= unused_after_days
            reason = (
                "API key never used"
                if used is None
                else (
                    f"API key unused for {days} days (flagged from {unused_after_days})" if unused else None
                )
            )
            rows[f"api_key/{key['id']}"] = dict(
                org_id=org_id,
                project_id=key.get("project_id"),
                principal=key["name"],
                member_role=None,
                is_active=True,
                is_outside_org=False,
                is_flagged_without_mfa=False,
                is_flagged_unused_key=unused,
                is_flagged_outside_share=False,
                is_flagged_excess_admin=False,
                review_reasons=reason,
                last_used_at=used,
                days_since_last_use=days,
                created_by=emails.get(key["created_by"]["id"]),
            )
    member_emails = {
        o["id"]: {m["user"]["email"].lower() for m in account.members(o["id"])} for o in account.organizations
    }
    for project in account.all_projects():
        org_id = project.get("org_id")
        for share in account.project_permissions(project["id"]):
            email = share["granted_to_email"].lower()
            active = "revoked_at" not in share
            outside = email not in member_emails[org_id] if org_id else None
            flagged = bool(active and outside)
            rows[f"project_share/{project['id']}/{share['id']}"] = dict(
                org_id=org_id,
                project_id=project["id"],
                principal=email,
                member_role=None,
                is_active=active,
                is_outside_org=outside,
                is_flagged_without_mfa=False,
                is_flagged_unused_key=False,
                is_flagged_outside_share=flagged,
                is_flagged_excess_admin=False,
                review_reasons="shared outside the organization" if flagged else None,
                last_used_at=None,
                days_since_last_use=None,
                created_by=None,
            )
    return rows


def project_security_rows(account) -> dict[str, dict]:
    """Per project id: the project_security mart's row, from what the simulator served."""
    member_emails = {
        o["id"]: {m["user"]["email"].lower() for m in account.members(o["id"])} for o in account.organizations
    }
    rows = {}
    for project in account.all_projects():
        pid, org_id = project["id"], project.get("org_id")
        settings = project.get("settings", {})
        allowed = settings.get("allowed_ips") or {}
        branches = account.branches(pid)
        protected = sum(1 for b in branches if b.get("protected"))
        ip_count = len(allowed.get("ips") or [])
        every_branch = ip_count > 0 and (
            not allowed.get("protected_branches_only") or protected == len(branches)
        )
        public_blocked = bool(settings.get("block_public_connections"))
        vpc_blocked = bool(settings.get("block_vpc_connections"))
        visible = visible_to_the_personal_key(account, org_id) if org_id else {}
        not_visible = []
        if org_id and not visible["api_keys"]:
            not_visible.append("organization API keys (403)")
        if org_id and not visible["vpc_endpoints"]:
            not_visible.append("organization VPC endpoints (403)")
            not_visible.append("VPC restrictions")
        if org_id and visible["vpc_endpoints"]:
            restrictions = len(account.project_vpc_endpoints(pid)) if account.org_vpc_endpoints(org_id) else 0
        else:
            restrictions = None if org_id else 0
        shares = [s for s in account.project_permissions(pid) if "revoked_at" not in s]
        outside = (
            sum(1 for s in shares if s["granted_to_email"].lower() not in member_emails[org_id])
            if org_id
            else None
        )
        rows[pid] = dict(
            org_id=org_id,
            is_reachable_from_anywhere=not public_blocked and not every_branch,
            has_ip_allow_list=ip_count > 0,
            allowed_ip_count=ip_count,
            is_ip_allow_list_on_every_branch=every_branch,
            is_public_connection_blocked=public_blocked,
            is_vpc_connection_blocked=vpc_blocked,
            is_vpc_only=public_blocked and not vpc_blocked,
            vpc_restriction_count=restrictions,
            branch_count=len(branches),
            protected_branch_count=protected,
            history_retention_seconds=project.get("history_retention_seconds"),
            is_logical_replication_enabled=bool(settings.get("enable_logical_replication")),
            is_hipaa_enabled=bool(settings.get("hipaa", "hipaa_enabled_at" in project)),
            audit_log_level=settings.get("audit_log_level"),
            active_share_count=len(shares),
            outside_org_share_count=outside,
            not_visible=", ".join(not_visible) or None,
        )
    return rows


def access_counts_per_org(account) -> dict[str, dict[str, int]]:
    """Per organization id: what the report's access section counts from the grants the simulator
    served (its members, its projects' shares) and its projects."""
    counts = {}
    for org in account.organizations:
        members = [m for m in account.members(org["id"]) if "deactivated_at" not in m["user"]]
        emails = {m["user"]["email"].lower() for m in account.members(org["id"])}
        shares = [
            s
            for p in account.all_projects(org["id"])
            for s in account.project_permissions(p["id"])
            if "revoked_at" not in s
        ]
        counts[org["id"]] = {
            "members": len(members),
            "admins": sum(1 for m in members if m["member"]["role"] == "admin"),
            "without_mfa": sum(1 for m in members if m["user"].get("has_mfa") is False),
            "shares": len(shares),
            "outside_shares": sum(1 for s in shares if s["granted_to_email"].lower() not in emails),
            "projects": len(account.all_projects(org["id"])),
        }
    return counts


# The access review's relations: the only ones that may hold an email address.
ACCESS_RELATIONS = {
    ("neon_api_data", "organization_members"),
    ("neon_api_data", "project_permissions"),
    ("neon_api_data", "project_members"),
    ("staging", "stg_neon__organization_members"),
    ("staging", "stg_neon__project_permissions"),
    ("staging", "stg_neon__project_members"),
    ("staging", "int_project_shares_matched_to_members"),
    ("marts", "access_review"),
    ("marts", "project_access"),
    ("marts", "access_findings"),  # a finding names the member or the address it is about
}


def relations_holding(warehouse, needles: set[str]) -> set[tuple[str, str]]:
    """(schema, relation) of every table and view whose rows, read as text, hold any of `needles`
    (DuckDB compresses strings on disk: a byte scan of the file could miss them)."""
    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        found = set()
        relations = connection.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
        for schema, table in relations:
            text = connection.execute(
                f'select string_agg(cast(t as varchar), chr(10)) from "{schema}"."{table}" as t'
            )
            blob = (text.fetchone()[0] or "").lower()
            if any(needle.lower() in blob for needle in needles):
                found.add((schema, table))
        return found
    finally:
        connection.close()


# ------------------------------------------------------------------- what Neon bills


def seed(name: str) -> list[dict]:
    with (DBT_PROJECT_DIR / "seeds" / f"{name}.csv").open() as file:
        return list(csv.DictReader(file))


class Billing:
    """Neon's billing model as the seeds write it: each metric's conversion, and the rate and the
    allowance in force for a plan on a period's first day."""

    def __init__(self) -> None:
        self.per = {
            row["metric_name"]: float(row["raw_units_per_billing_unit"]) for row in seed("neon_metric_units")
        }
        self.rates = seed("neon_rate_card")
        self.allowances = seed("neon_plan_allowances")

    @staticmethod
    def _in_force(rows: list[dict], plan: str, metric: str, period_start: date) -> dict | None:
        candidates = [
            row
            for row in rows
            if row["plan"] == plan
            and row["metric_name"] == metric
            and date.fromisoformat(row["effective_from"]) <= period_start
        ]
        return max(candidates, key=lambda row: row["effective_from"], default=None)

    def rate(self, plan: str, metric: str, period_start: date) -> float | None:
        row = self._in_force(self.rates, plan, metric, period_start)
        return None if row is None else float(row["rate_usd"])

    def allowance(self, plan: str, metric: str, period_start: date) -> tuple[float, str] | None:
        row = self._in_force(self.allowances, plan, metric, period_start)
        return None if row is None else (float(row["included_quantity"]), row["included_per"])
