"""The access rows a simulated account served and those a warehouse landed, as sets to compare."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from expected import query
from neon_simulator import Account


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def served_members(account: Account, emails=lambda e: e) -> set[tuple]:
    return {
        (
            m["member"]["id"],
            m["member"]["user_id"],
            org["id"],
            m["member"]["role"],
            ts(m["member"].get("joined_at")),
            emails(m["user"]["email"]),
            m["user"].get("has_mfa"),
            ts(m["user"].get("deactivated_at")),
        )
        for org in account.organizations
        for m in account.members(org["id"])
    }


def served_shares(account: Account, emails=lambda e: e) -> set[tuple]:
    return {
        (p["id"], s["id"], emails(s["granted_to_email"]), ts(s["granted_at"]), ts(s.get("revoked_at")))
        for p in account.all_projects()
        for s in account.project_permissions(p["id"])
    }


def landed_members(warehouse: Path) -> set[tuple]:
    return set(
        query(
            warehouse,
            "select id, user_id, org_id, role, joined_at, email, has_mfa, deactivated_at "
            "from neon_api_data.organization_members",
        )
    )


def landed_shares(warehouse: Path) -> set[tuple]:
    return set(
        query(
            warehouse,
            "select project_id, id, granted_to_email, granted_at, revoked_at from neon_api_data.project_permissions",
        )
    )


def coverage(warehouse: Path) -> dict[tuple[str, str], dict]:
    rows = query(
        warehouse,
        "select listing, scope_id, is_visible, status, detail, read_reason, confirmed_at "
        "from neon_api_data.access_coverage",
    )
    names = ("is_visible", "status", "detail", "read_reason", "confirmed_at")
    return {(listing, scope): dict(zip(names, rest, strict=True)) for listing, scope, *rest in rows}
