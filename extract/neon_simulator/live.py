"""What Neon's live spec (2026-08-06, ``neon-openapi-v2-live.yaml``) serves beyond the 2.7.3 client:
per-project permissions (``GET /projects/{project_id}/members``) and deleted branches kept for
restore (``GET .../branches?include_deleted=true``, each with ``recovery``).

**Project members.** Every member of a project's organization has, on each of its projects, an
organization default (from their organization role), perhaps an explicit grant, and so an
effective permission and where it comes from (``grant_source``):

- an organization ``admin``: ``ADMIN`` whatever is granted (``org_admin_override``);
- else an explicit grant, when there is one (``explicit``): it replaces the default;
- else the default of the organization role (``org_role_default``): ``member`` and ``editor``
  get ``EDITOR``, ``viewer`` gets ``VIEWER``, ``collaborator`` gets nothing;
- else no access (``unassigned``): no effective permission, no project role.

A caller who is an admin on the project (an organization admin, an organization key) sees every
member, the unassigned too; any other caller sees those with access. Personal projects answer 404.
Explicit grants are drawn from a generator of their own (``f"{seed}:access:project-members"``),
which also makes one plain member of each organization a ``collaborator`` (Neon's role for people
who see chosen projects only): collaborators are often granted, other members now and then; changes
(:meth:`set_project_member_role`) leave no signal, like shares.

**Deleted branches.** A deleted branch stays listable with ``include_deleted=true`` for
:data:`RECOVERY_DAYS`, as its last ``Branch`` record plus ``recovery {deleted_at,
recoverable_until, deletion_method}``: ``user`` from :meth:`delete_branch`, ``ttl`` from
:meth:`expire_ttl_branches`. Generation adds a few branches deleted in the week before the
account's clock, which no client saw alive (their consumption is not simulated).

**Limits** (in both specs, drawn from a generator of their own, ``f"{seed}:limits"``): a quarter of
the projects have a ``settings.quota`` of a few of :data:`QUOTA_USAGE`'s keys, each set between
:data:`QUOTA_FACTORS` times the project's usage when drawn (some near, some far; ``0`` is
unlimited); ``GET /organizations/{org_id}/billing/spending_limit`` answers a Launch or Scale
organization's monthly limit in cents (``null``: none) and 403 on other plans; a few branches carry
``restricted_actions``.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .records import _snapshot
from .timestamps import _DAY, parse_ts, ts

if TYPE_CHECKING:
    from .records import _Project

#: How long a deleted branch can be restored (Neon: 7 days).
RECOVERY_DAYS = 7
#: ``ProjectPermissionLevel`` from weakest to strongest (the live spec's names).
LEVELS = ("VIEWER", "EDITOR", "ADMIN")
#: Quota keys (``ProjectQuota``) and the usage each is measured against: a ``ProjectListItem``
#: field, or the sum (or, for the per-branch logical size, the largest) of a ``Branch`` field.
QUOTA_USAGE = {
    "active_time_seconds": ("project", "active_time"),
    "compute_time_seconds": ("project", "cpu_used_sec"),
    "written_data_bytes": ("branches", "written_data_bytes"),
    "data_transfer_bytes": ("branches", "data_transfer_bytes"),
    "logical_size_bytes": ("largest branch", "logical_size"),
}
#: A quota is drawn as this many times the usage (at least one unit), or 0 (unlimited).
QUOTA_FACTORS = (0.0, 0.9, 1.05, 1.5, 4.0)
#: Spending limits drawn for Launch and Scale organizations, in cents (``None``: no limit).
SPENDING_LIMITS_CENTS = (None, 5_000, 50_000, 500_000)
SPENDING_LIMIT_PLANS = frozenset({"launch", "scale"})
#: Restrictions Neon sets on a branch, with its reasons (``BranchRestrictedAction``).
RESTRICTIONS = (
    {"name": "restore", "reason": "the branch is protected; unprotect it to restore into it"},
    {"name": "delete-rw-endpoint", "reason": "the branch has a backup schedule"},
)
#: The project permission each organization role gives by default (``None``: none).
ORG_ROLE_DEFAULT = {"admin": "ADMIN", "member": "EDITOR", "editor": "EDITOR", "viewer": "VIEWER"}


class LiveApi:
    """Project members and deleted branches of :class:`~neon_simulator.account.Account`, mixed in."""

    def _init_live(self) -> None:
        self._grants: dict[str, dict[str, str]] = {}  # project id -> member id -> explicit level
        self._deleted: dict[str, dict[str, dict]] = {}  # project id -> branch id -> Branch + recovery
        self._spending_limits: dict[str, int | None] = {}  # org id -> cents, for Launch and Scale orgs
        self._without_project_roles: set[str] = set()  # orgs with per-project permissions off

    # ---------------------------------------------------------------------------------- generation

    def _generate_live(self) -> None:
        rng = random.Random(f"{self.spec.seed}:access:project-members")
        for org_id in sorted(self._members):  # Neon's new role for people who see chosen projects
            others = [
                m["member"]
                for m in self._members[org_id]
                if m["member"]["role"] == "member" and m["member"]["user_id"] != self._user["id"]
            ]
            if others:
                rng.choice(others)["role"] = "collaborator"
        for pid in sorted(self._projects):
            project = self._projects[pid]
            grants = {}
            for record in self._members.get(project.scope or "", []) if project.scope else []:
                role = record["member"]["role"]
                if role == "admin":
                    chance = 0.05  # an explicit grant an admin's override makes moot
                elif role == "collaborator":
                    chance = 0.5
                else:
                    chance = 0.12
                if rng.random() < chance:
                    grants[record["member"]["id"]] = rng.choice(LEVELS)
            self._grants[pid] = grants
            if rng.random() < 0.3:
                self._add_deleted_branches(project, rng)
        self._generate_limits()

    def _generate_limits(self) -> None:
        rng = random.Random(f"{self.spec.seed}:limits")
        for org in self._orgs:
            if org["id"] in self._plan_orgs and org["plan"] in SPENDING_LIMIT_PLANS:
                self._spending_limits[org["id"]] = rng.choice(SPENDING_LIMITS_CENTS)
        for pid in sorted(self._projects):
            project = self._projects[pid]
            if rng.random() < 0.25:
                usage = self.quota_usage(pid)
                keys = rng.sample(sorted(QUOTA_USAGE), rng.randint(1, 3))
                quota = {k: int(max(usage[k], 1) * rng.choice(QUOTA_FACTORS)) for k in sorted(keys)}
                project.item.setdefault("settings", {})["quota"] = quota
            for branch in project.branches.values():
                if branch.get("protected") and rng.random() < 0.3:
                    branch["restricted_actions"] = [dict(RESTRICTIONS[0])]
                if self._schedules.get(pid, {}).get(branch["id"]) and rng.random() < 0.5:
                    branch.setdefault("restricted_actions", []).append(dict(RESTRICTIONS[1]))

    def _add_deleted_branches(self, project: _Project, rng: random.Random) -> None:
        """One or two branches deleted in the last week, shaped like the project's branches."""
        branches = list(project.branches.values())
        root = next(b for b in branches if "parent_id" not in b)
        for n in range(rng.randint(1, 2)):
            template = _snapshot(rng.choice(branches))
            deleted = self._now - rng.randrange(3600, (RECOVERY_DAYS - 1) * _DAY)
            created = max(parse_ts(root["created_at"]), deleted - rng.randrange(_DAY, 30 * _DAY))
            template.update(
                id=self._new_id(rng, "br-", created),
                name=f"gone-{n}-{template['name']}"[:60],
                parent_id=root["id"],
                default=False,
                protected=False,
                created_at=ts(created),
                updated_at=ts(deleted),
                state_changed_at=ts(deleted),
            )
            template.pop("primary", None)
            method = "ttl" if rng.random() < 0.4 else "user"
            if method == "ttl":
                template["expires_at"] = ts(deleted)
                template["ttl_interval_seconds"] = deleted - created
            self._deleted.setdefault(project.item["id"], {})[template["id"]] = _recovered(
                template, deleted, method
            )

    # ---------------------------------------------------------------------------------- reads

    def project_members(self, project_id: str, *, see_unassigned: bool = True) -> list[dict]:
        """``ProjectMember`` records of a project, by member id ([] for a personal project);
        without ``see_unassigned`` only those with access."""
        with self.lock:
            project = self._project(project_id)
            if project.scope is None:
                return []
            grants = self._grants.get(project_id, {})
            found = []
            for record in sorted(self._members.get(project.scope, []), key=lambda r: r["member"]["id"]):
                member = _project_member(record, grants.get(record["member"]["id"]))
                if see_unassigned or member["grant_source"] != "unassigned":
                    found.append(member)
            return found

    def quota_usage(self, project_id: str) -> dict[str, int]:
        """What each of the project's quotas (:data:`QUOTA_USAGE`) is measured against, now."""
        with self.lock:
            project = self._project(project_id)
            branches = list(project.branches.values())
            usage = {}
            for key, (where, field) in QUOTA_USAGE.items():
                if where == "project":
                    usage[key] = project.item.get(field, 0)
                elif where == "branches":
                    usage[key] = sum(b.get(field, 0) for b in branches)
                else:
                    usage[key] = max((b.get(field, 0) for b in branches), default=0)
            return usage

    def spending_limit(self, org_id: str) -> int | None:
        """An organization's monthly spending limit in cents (``None``: none); ``KeyError`` when
        its plan has no spending limits (Launch and Scale only)."""
        with self.lock:
            return self._spending_limits[org_id]

    def set_project_roles(self, org_id: str, enabled: bool) -> None:
        """Turn an organization's per-project permissions on or off: off, Neon answers its
        projects' members listing 404, as for a project that does not exist."""
        with self.lock:
            if enabled:
                self._without_project_roles.discard(org_id)
            else:
                self._without_project_roles.add(org_id)

    def project_roles_enabled(self, org_id: str) -> bool:
        return org_id not in self._without_project_roles

    def deleted_branches(self, project_id: str) -> list[dict]:
        """Deleted branches still restorable at the account clock, each with ``recovery``."""
        with self.lock:
            self._project(project_id)
            return _snapshot(
                [
                    b
                    for b in self._deleted.get(project_id, {}).values()
                    if parse_ts(b["recovery"]["recoverable_until"]) > self._now
                ]
            )

    # ---------------------------------------------------------------------------------- changes

    def set_project_member_role(self, project_id: str, member_id: str, level: str | None) -> dict:
        """Grant ``level`` (``VIEWER``, ``EDITOR``, ``ADMIN``) explicitly, or remove the explicit
        grant (``None``); returns the member as the listing now serves it. No signal is left."""
        with self.lock:
            project = self._project(project_id)
            record = next(m for m in self._members[project.scope or ""] if m["member"]["id"] == member_id)
            grants = self._grants.setdefault(project_id, {})
            if level is None:
                grants.pop(member_id, None)
            else:
                if level not in LEVELS:
                    raise ValueError(f"unknown permission level {level}")
                grants[member_id] = level
            return _project_member(record, grants.get(member_id))

    def _keep_deleted(self, project: _Project, branch: dict, method: str) -> None:
        """Keep a branch being deleted at the account clock restorable for RECOVERY_DAYS."""
        record = _snapshot(branch)
        record["updated_at"] = record["state_changed_at"] = ts(self._now)
        self._deleted.setdefault(project.item["id"], {})[record["id"]] = _recovered(record, self._now, method)

    def expire_ttl_branches(self) -> list[str]:
        """Delete every branch whose ``expires_at`` has passed (``deletion_method`` ``ttl``), as
        Neon does, with a ``delete_timeline`` operation each; returns their ids."""
        with self.lock:
            expired = [
                (pid, bid)
                for pid, project in self._projects.items()
                for bid, branch in project.branches.items()
                if "expires_at" in branch and parse_ts(branch["expires_at"]) <= self._now
            ]
            gone = []
            for pid, bid in expired:
                if bid in self._projects[pid].branches:
                    gone += self.delete_branch(pid, bid, cascade=True, method="ttl")
            return gone


def _recovered(branch: dict, deleted: int, method: str) -> dict:
    branch["recovery"] = {
        "deleted_at": ts(deleted),
        "recoverable_until": ts(deleted + RECOVERY_DAYS * _DAY),
        "deletion_method": method,
    }
    return branch


def _project_member(record: dict, explicit: str | None) -> dict:
    """One ``ProjectMember``: an organization member's access to a project (see the module)."""
    role = record["member"]["role"]
    default = ORG_ROLE_DEFAULT.get(role)
    if role == "admin":
        effective, source = "ADMIN", "org_admin_override"
    elif explicit is not None:
        effective, source = explicit, "explicit"
    elif default is not None:
        effective, source = default, "org_role_default"
    else:
        effective, source = None, "unassigned"
    email = record["user"]["email"]
    member = {
        "member_id": record["member"]["id"],
        "user_id": record["member"]["user_id"],
        "email": email,
        "name": email.split("@")[0].replace(".", " ").title(),
        "org_role": role,
        "grant_source": source,
    }
    if default is not None:
        member["org_default_project_permission"] = default
    if explicit is not None:
        member["explicit_project_permission"] = explicit
    if effective is not None:
        member["effective_project_permission"] = effective
        member["project_role"] = effective.lower()
    return member
