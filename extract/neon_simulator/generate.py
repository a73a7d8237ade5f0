"""Building an account from an :class:`~neon_simulator.reference.AccountSpec`: organizations,
projects, branch trees, computes, databases, roles and operations, all drawn from one seeded
generator, so the same spec (same seed and ``now``) always yields byte-identical data.

The building blocks (``_add_child``, ``_add_endpoint``, ``_add_operations``,
``_refresh_project_totals``, ...) also serve :mod:`~neon_simulator.mutations`, so that a branch
created later looks like a generated one.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import uuid
from datetime import UTC
from typing import Self

from .consumption import CHILD_OWN_PERCENT
from .records import _Project
from .reference import (
    _ADJECTIVES,
    _APPLICATIONS,
    _CHILD_BRANCH_NAMES,
    _COMPANIES,
    _COMPUTE_ACTIONS,
    _CREATION_SOURCES,
    _CU_SIZES,
    _DATABASE_NAMES,
    _FINAL_STATUSES,
    _ID_ALPHABET,
    _NEW_ID_STYLE_SINCE,
    _NOUNS,
    _OPERATION_ACTIONS,
    _PASSWORD_ALPHABET,
    _PEOPLE,
    _PG_VERSIONS,
    _PLANS,
    _PROJECT_NAMES,
    _PROJECT_REGIONS,
    _ROLE_NAMES,
    _SUSPEND_TIMEOUTS,
    CONSUMPTION_EPOCH,
    DEFAULT_REGION,
    REGIONS,
    AccountSpec,
)
from .timestamps import _DAY, _HOUR, default_clock, month_start, parse_ts, ts


def _newest_first(op: dict) -> tuple[str, str]:
    """Sort key of operations; sorted in reverse it gives the served order (newest first)."""
    return op["created_at"], op["id"]


class Generation:
    """How :class:`~neon_simulator.account.Account` builds its records, mixed into it."""

    # ---------------------------------------------------------------------------------- generation

    @classmethod
    def generate(cls, spec: AccountSpec | None = None) -> Self:
        """Generate an account from ``spec`` (default: ``AccountSpec()``), deterministically."""
        spec = spec or AccountSpec()
        now = spec.now or default_clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        account = cls(spec, now.astimezone(UTC))
        account._generate(random.Random(spec.seed))
        return account

    def _generate(self, rng: random.Random) -> None:
        spec = self.spec
        self._regions = [
            {
                "region_id": rid,
                "name": name,
                "default": rid == DEFAULT_REGION,
                "geo_lat": lat,
                "geo_long": lon,
            }
            for rid, name, lat, lon, _ in REGIONS
        ]
        self._user = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "email": "ada.lovelace@example.com",
            "login": "ada.lovelace@example.com",
            "name": "Ada",
            "last_name": "Lovelace",
            "image": "https://avatars.example.com/u/ada.png",
            "active_seconds_limit": 0,
            "projects_limit": 0,
            "branches_limit": 5000,
            "max_autoscaling_limit": 16,
            "auth_accounts": [
                {
                    "provider": "github",
                    "email": "ada.lovelace@example.com",
                    "name": "Ada Lovelace",
                    "login": "ada.lovelace@example.com",
                    "image": "https://avatars.example.com/u/ada.png",
                }
            ],
            "plan": "scale" if spec.orgs and spec.consumption_plan_orgs else "free_v3",
        }
        for index in range(spec.orgs):
            self._add_org(index, rng)
        today = self._now - self._now % _DAY
        self._consumption_since = max(
            today - spec.consumption_days * _DAY, int(CONSUMPTION_EPOCH.timestamp())
        )
        if spec.branch_consumption_days is not None:
            branch_since = today - spec.branch_consumption_days * _DAY
            self._branch_consumption_since = max(branch_since, self._consumption_since)
        else:
            self._branch_consumption_since = self._consumption_since
        for index, n_branches in enumerate(self._branch_counts(rng)):
            self._add_project(index, n_branches, rng)
        self._generate_access()  # from a generator of its own: access.py
        self._generate_backups()  # and so are snapshots and backup schedules: backups.py
        self._generate_live()  # project members, deleted branches, limits: live.py

    def _branch_counts(self, rng: random.Random) -> list[int]:
        """Branches per project: exactly ``round(projects * mean)`` in total, unevenly spread."""
        spec = self.spec
        total = round(spec.projects * spec.branches_per_project)
        counts = [1] * spec.projects
        if spec.projects:
            weights = [min(rng.paretovariate(1.5), 60.0) for _ in range(spec.projects)]
            for index in rng.choices(range(spec.projects), weights, k=max(0, total - spec.projects)):
                counts[index] += 1
        return counts

    def _new_id(self, rng: random.Random, prefix: str, created: int, *, digits: int = 0) -> str:
        """A unique Neon-style id ``prefix + adjective-noun-suffix``.

        The suffix has ``digits`` digits if given, else six digits for objects created before mid
        2024 and Neon's newer eight lowercase alphanumerics after that.
        """
        while True:
            if digits:
                suffix = f"{rng.randrange(10**digits):0{digits}d}"
            elif created >= _NEW_ID_STYLE_SINCE:
                suffix = "".join(rng.choices(_ID_ALPHABET, k=8))
            else:
                suffix = f"{rng.randrange(10**6):06d}"
            ident = f"{prefix}{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-{suffix}"
            if ident not in self._used_ids:
                self._used_ids.add(ident)
                return ident

    def _add_org(self, index: int, rng: random.Random) -> None:
        created = self._now - rng.randint(400, 1100) * _DAY + rng.randrange(_DAY)
        org_id = self._new_id(rng, "org-", created, digits=8)
        name = _COMPANIES[index % len(_COMPANIES)]
        if index >= len(_COMPANIES):
            name += f" {index // len(_COMPANIES) + 1}"
        paid = index < self.spec.consumption_plan_orgs
        org = {
            "id": org_id,
            "name": name,
            "handle": f"{name.lower().replace(' ', '-')}-{org_id[-8:]}",
            "plan": self._paid_plan(rng) if paid else "free",
            "created_at": ts(created),
            "updated_at": ts(created + rng.randrange(self._now - created)),
            "managed_by": "console",
        }
        if rng.random() < 0.5:
            org["allow_hipaa_projects"] = rng.random() < 0.3
        if rng.random() < 0.5:
            org["require_mfa"] = rng.random() < 0.4
        self._orgs.append(org)
        self._org_by_id[org_id] = org
        if paid:
            self._plan_orgs.add(org_id)

    def _paid_plan(self, rng: random.Random) -> str:
        """A paid organization's plan: the spec's, else drawn (drawn either way, so that the rest
        of the account is the same with or without ``paid_plan``)."""
        drawn = rng.choice(_PLANS)
        return self.spec.paid_plan or drawn

    def _add_project(self, index: int, n_branches: int, rng: random.Random) -> None:
        now = self._now
        org = self._orgs[rng.randrange(len(self._orgs))] if self._orgs else None
        # Skew towards recent projects; at least two days old so every tree has room to grow.
        created = now - int(2 * _DAY + (rng.random() ** 1.6) * 700 * _DAY)
        pid = self._new_id(rng, "", created)
        region_id = _PROJECT_REGIONS(rng)
        platform, location = region_id.split("-", 1)
        proxy_host = f"{location}.{platform}.neon.tech"
        paid = org is not None and org["id"] in self._plan_orgs
        limit_mib = 204800 if paid else 512
        item = {
            "id": pid,
            "platform_id": platform,
            "region_id": region_id,
            "name": pid if rng.random() < 0.3 else f"{rng.choice(_PROJECT_NAMES)}-{index}",
            "provisioner": "k8s-pod" if rng.random() < 0.1 else "k8s-neonvm",
            "pg_version": _PG_VERSIONS(rng),
            "proxy_host": proxy_host,
            "branch_logical_size_limit": limit_mib,
            "branch_logical_size_limit_bytes": limit_mib * 1024 * 1024,
            "store_passwords": rng.random() < 0.95,
            "active_time": 0,
            "cpu_used_sec": 0,
            "creation_source": _CREATION_SOURCES(rng),
            "created_at": ts(created),
            "updated_at": ts(created + int(rng.random() ** 2 * (now - created))),
            "owner_id": self._user["id"],
        }
        if rng.random() < 0.8:
            item["default_endpoint_settings"] = {
                "autoscaling_limit_min_cu": 0.25,
                "autoscaling_limit_max_cu": rng.choice((0.25, 1, 2, 4)),
                "suspend_timeout_seconds": 0,
            }
        if rng.random() < 0.6:
            settings: dict = {"enable_logical_replication": rng.random() < 0.2}
            if rng.random() < 0.3:
                settings["allowed_ips"] = {"ips": ["203.0.113.0/24"], "protected_branches_only": False}
            if rng.random() < 0.3:
                settings["maintenance_window"] = {
                    "weekdays": [rng.randint(1, 7)],
                    "start_time": "02:00",
                    "end_time": "03:00",
                }
            item["settings"] = settings
        if rng.random() < 0.9:
            item["synthetic_storage_size"] = 0  # filled in by _refresh_project_totals
        retention = rng.choice((86400, 604800, 2592000)) if paid else 86400
        if rng.random() < 0.85:
            item["history_retention_seconds"] = retention
        if rng.random() < 0.03:
            item["maintenance_starts_at"] = ts(now + rng.randint(1, 72) * _HOUR)
        if paid and rng.random() < 0.05:
            item["hipaa_enabled_at"] = ts(created + rng.randrange(now - created))
        if org is not None:
            item["org_id"] = org["id"]
            item["org_name"] = org["name"]
        detail: dict = {"history_retention_seconds": retention}
        if rng.random() < 0.7:
            detail["owner"] = {
                "email": self._user["email"],
                "name": f"{self._user['name']} {self._user['last_name']}",
                "branches_limit": 5000 if paid else 10,
                "subscription_type": org["plan"] if paid else "free_v3",
            }
        project = _Project(item, detail, org["id"] if org else None, activity=rng.random())
        if rng.random() < 0.15:
            project.applications = sorted(rng.sample(_APPLICATIONS, rng.randint(1, 2)))
        self._projects[pid] = project
        bisect.insort(self._order.setdefault(project.scope, []), (item["created_at"], pid))

        self._add_root(project, created, rng, default=True)
        for _ in range(n_branches - 1):
            self._add_generated_branch(project, rng)
        self._add_operations(project, rng.randint(0, 2 * self.spec.operations_per_project), rng)
        self._refresh_project_totals(project)

    # ------------------------------------------------------------------ branches (generation)

    def _add_root(self, project: _Project, created: int, rng: random.Random, *, default: bool) -> dict:
        """The default root branch, or (rarely) an extra schema-only root without a parent."""
        name = (
            ("main" if rng.random() < 0.8 else "production")
            if default
            else f"schema-copy-{len(project.branches)}"
        )
        branch = self._branch_record(project, created, name, rng, parent=None, default=default)
        if not default:
            branch["init_source"] = "schema-only"
        branch["logical_size"] = int(rng.lognormvariate(19.5, 1.6))  # ~300 MB median, long tail
        project.meta[branch["id"]] = (0, created)
        self._log_size(project, branch, created)
        self._add_branch_contents(project, branch, rng, parent=None)
        return branch

    def _add_generated_branch(self, project: _Project, rng: random.Random) -> dict:
        now = self._now
        root_id = next(iter(project.branches))
        root_created = project.meta[root_id][1]
        if rng.random() < 0.03:
            return self._add_root(
                project, root_created + rng.randrange(now - _HOUR - root_created), rng, default=False
            )
        max_depth = self.spec.max_branch_depth
        candidates = [
            bid for bid, (depth, born) in project.meta.items() if depth < max_depth and born < now - _HOUR
        ]
        parent_id = root_id if rng.random() < 0.45 else rng.choice(candidates)
        parent_created = project.meta[parent_id][1]
        created = parent_created + 60 + int(rng.random() ** 0.7 * (now - _HOUR - parent_created - 60))
        return self._add_child(
            project, project.branches[parent_id], created, self._child_name(project, rng), rng
        )

    @staticmethod
    def _child_name(project: _Project, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.3:
            base = f"preview/pr-{rng.randint(1, 999)}-{rng.choice(_NOUNS)}"
        elif roll < 0.5:
            base = f"dev/{rng.choice(_PEOPLE)}"
        elif roll < 0.6:
            base = f"feature/{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        else:
            base = rng.choice(_CHILD_BRANCH_NAMES)
        taken = {b["name"] for b in project.branches.values()}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name

    def _add_child(
        self,
        project: _Project,
        parent: dict,
        created: int,
        name: str,
        rng: random.Random,
        *,
        fresh: bool = False,
    ) -> dict:
        branch = self._branch_record(project, created, name, rng, parent=parent, default=False, fresh=fresh)
        if "logical_size" in branch:
            branch["logical_size"] = int(parent.get("logical_size", 0) * rng.uniform(0.8, 1.25))
        project.meta[branch["id"]] = (project.meta[parent["id"]][0] + 1, created)
        self._log_size(project, branch, created)
        self._add_branch_contents(project, branch, rng, parent=parent)
        if branch["name"].startswith("preview/") and rng.random() < 0.7:
            project.annotations[branch["id"]] = {
                "object": {"type": "console/branch", "id": branch["id"]},
                "value": {
                    "vercel-commit-ref": branch["name"].split("/", 1)[1],
                    "vercel-commit-author": rng.choice(_PEOPLE),
                },
                "created_at": branch["created_at"],
                "updated_at": branch["created_at"],
            }
        return branch

    def _branch_record(
        self,
        project: _Project,
        created: int,
        name: str,
        rng: random.Random,
        *,
        parent: dict | None,
        default: bool,
        fresh: bool = False,
    ) -> dict:
        """A ``Branch`` in API shape, stored in ``project``. Counters start at zero; computes add usage.

        ``fresh`` branches (created by a mutation at the account clock) are plainly ``ready``.
        """
        now = self._now
        age = now - created
        state = "ready"
        if parent is not None and not fresh:
            if age > 14 * _DAY and rng.random() < 0.12:
                state = "archived"
            elif age < 2 * _DAY and rng.random() < 0.25:
                state = "init"
        branch = {"id": self._new_id(rng, "br-", created), "project_id": project.item["id"]}
        if parent is not None:
            branch["parent_id"] = parent["id"]
            branch["parent_lsn"] = f"{rng.randrange(16):X}/{rng.randrange(1 << 32):X}"
            if not fresh and rng.random() < 0.3:
                branch["parent_timestamp"] = ts(
                    max(project.meta[parent["id"]][1], created - rng.randrange(60, 3 * _DAY))
                )
        branch["name"] = name
        branch["current_state"] = state
        if state == "init" and rng.random() < 0.75:
            branch["pending_state"] = "ready"
        changed = created + (
            rng.randrange(max(1, age)) if state == "archived" else min(age, rng.randint(1, 5))
        )
        branch["state_changed_at"] = ts(changed)
        if state != "init":
            branch["logical_size"] = 0
        branch["creation_source"] = "console" if default else _CREATION_SOURCES(rng)
        branch["default"] = default
        branch["protected"] = rng.random() < (0.3 if default else 0.05)
        branch["cpu_used_sec"] = 0
        branch["compute_time_seconds"] = 0
        branch["active_time_seconds"] = 0
        branch["written_data_bytes"] = 0
        branch["data_transfer_bytes"] = 0
        branch["created_at"] = ts(created)
        branch["updated_at"] = ts(created + int(rng.random() ** 3 * age))
        if parent is not None and not fresh:
            if rng.random() < 0.1 and age < 7 * _DAY:
                expires = now + rng.randint(1, 14 * 24) * _HOUR
                branch["ttl_interval_seconds"] = expires - created
                branch["expires_at"] = ts(expires)
            if rng.random() < 0.05:
                branch["last_reset_at"] = ts(created + rng.randrange(max(1, age)))
        if parent is not None and rng.random() < 0.7:
            branch["init_source"] = "parent-data"
        if rng.random() < 0.6:
            branch["created_by"] = {
                "name": f"{self._user['name']} {self._user['last_name']}",
                "image": self._user["image"],
            }
        project.branches[branch["id"]] = branch
        return branch

    def _add_branch_contents(
        self, project: _Project, branch: dict, rng: random.Random, *, parent: dict | None
    ) -> None:
        """Roles, databases and computes of a new branch (children inherit their parent's roles/dbs)."""
        spec = self.spec
        bid, created = branch["id"], branch["created_at"]
        if parent is None:
            extra_roles = self._extra_count(rng, spec.roles_per_branch, len(_ROLE_NAMES))
            extra_dbs = self._extra_count(rng, spec.databases_per_branch, len(_DATABASE_NAMES))
            role_names = ["neondb_owner", *rng.sample(_ROLE_NAMES, extra_roles)]
            db_names = ["neondb", *rng.sample(_DATABASE_NAMES, extra_dbs)]
            owners = [rng.choice(role_names[: 1 + len(role_names) // 2]) for _ in db_names]
        else:
            role_names = [r["name"] for r in project.roles[parent["id"]]]
            db_names = [d["name"] for d in project.databases[parent["id"]]]
            owners = [d["owner_name"] for d in project.databases[parent["id"]]]
        roles = []
        for name in role_names:
            role = {"branch_id": bid, "name": name}
            if rng.random() < 0.8:
                role["protected"] = False
            if rng.random() < 0.7:
                role["authentication_method"] = "password"
            role["created_at"] = created
            role["updated_at"] = created
            if spec.serve_secrets:
                role["password"] = self._password(bid, name)
            roles.append(role)
        project.roles[bid] = roles
        databases = []
        for name, owner in zip(db_names, owners, strict=True):
            self._last_database_id += rng.randint(1, 97)
            databases.append(
                {
                    "id": self._last_database_id,
                    "branch_id": bid,
                    "name": name,
                    "owner_name": owner,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        project.databases[bid] = databases
        self._add_branch_endpoints(project, branch, rng)

    @staticmethod
    def _extra_count(rng: random.Random, mean: float, cap: int) -> int:
        """How many entries beyond the mandatory first one, so that the overall mean is ``mean``."""
        extra = mean - 1
        if extra <= 0:
            return 0
        return min(cap, int(rng.expovariate(1 / extra) + 0.5))

    def _password(self, branch_id: str, role_name: str) -> str:
        """A realistic role password, derived from the seed alone (never from a shared generator)."""
        digest = hashlib.sha256(f"{self.spec.seed}:pw:{branch_id}:{role_name}".encode()).digest()
        return "npg_" + "".join(_PASSWORD_ALPHABET[b % len(_PASSWORD_ALPHABET)] for b in digest[:12])

    def _add_branch_endpoints(self, project: _Project, branch: dict, rng: random.Random) -> None:
        """At most one read-write compute per branch, and sometimes read-only replicas beside it."""
        state = branch["current_state"]
        if state == "init":
            return
        p_rw = 0.95 if branch["default"] else (0.3 if state == "archived" else 0.55)
        if rng.random() >= p_rw:
            return
        self._add_endpoint(project, branch, "read_write", rng)
        if state == "ready" and rng.random() < self.spec.read_only_ratio:
            for _ in range(rng.randint(1, 2)):
                self._add_endpoint(project, branch, "read_only", rng)

    def _add_endpoint(self, project: _Project, branch: dict, kind: str, rng: random.Random) -> None:
        now = self._now
        item = project.item
        created = min(now, project.meta[branch["id"]][1] + rng.randint(1, 600))
        eid = self._new_id(rng, "ep-", created)
        low = rng.choice(_CU_SIZES[:3])
        high = rng.choice([c for c in _CU_SIZES if c >= low])
        endpoint = {
            "host": f"{eid}.{item['proxy_host']}",
            "id": eid,
            "project_id": item["id"],
            "branch_id": branch["id"],
            "autoscaling_limit_min_cu": low,
            "autoscaling_limit_max_cu": high,
            "region_id": item["region_id"],
            "type": kind,
            "current_state": "idle",
            "settings": {},
            "pooler_enabled": rng.random() < 0.2,
            "pooler_mode": "transaction",
            "disabled": rng.random() < 0.02,
            "passwordless_access": rng.random() < 0.3,
            "creation_source": branch["creation_source"],
            "created_at": ts(created),
            "updated_at": ts(created + int(rng.random() ** 2 * (now - created))),
            "proxy_host": item["proxy_host"],
            "suspend_timeout_seconds": _SUSPEND_TIMEOUTS(rng),
            "provisioner": item["provisioner"],
        }
        if rng.random() < 0.1:
            endpoint["name"] = f"{branch['name'].split('/')[-1]}-{kind.replace('_', '-')}"
        if rng.random() < 0.3:
            endpoint["settings"] = {
                "pg_settings": {"max_connections": str(rng.choice((100, 200, 450))), "work_mem": "64MB"}
            }
        if rng.random() < 0.6:
            endpoint["compute_release_version"] = str(rng.randint(7000, 9999))
        if branch["current_state"] == "ready" and not endpoint["disabled"]:
            roll = rng.random()
            if roll < 0.2:
                endpoint["current_state"] = "active"
                endpoint["started_at"] = ts(max(created, now - rng.randint(60, 6 * _HOUR)))
                endpoint["last_active"] = ts(now)
            elif roll < 0.9:
                suspended = created + int(rng.random() ** 0.3 * (now - created))
                endpoint["last_active"] = ts(max(created, suspended - 300))
                endpoint["started_at"] = ts(max(created, suspended - rng.randint(300, 4 * _HOUR)))
                endpoint["suspended_at"] = ts(suspended)
            # else: never active, so no last_active, started_at or suspended_at at all
        elif branch["current_state"] == "archived":
            suspended = created + rng.randrange((now - created) // 4 + 1)
            endpoint["last_active"] = ts(suspended)
            endpoint["suspended_at"] = ts(suspended)
        project.endpoints.append(endpoint)
        self._track_compute(project, endpoint)  # its activity: what consumption is computed from

    # ---------------------------------------------------------------------------------- operations

    def _add_operations(
        self, project: _Project, count: int, rng: random.Random, *, recent: bool = False
    ) -> list[dict]:
        """Add ``count`` operations from the last 90 days (or the last ten minutes if ``recent``)."""
        now = self._now
        floor = max(parse_ts(project.item["created_at"]), now - 90 * _DAY)
        born = sorted((created, bid) for bid, (_, created) in project.meta.items())
        new = []
        for _ in range(count):
            created = now - rng.randrange(600) if recent else floor + rng.randrange(max(1, now - floor))
            action = _OPERATION_ACTIONS(rng)
            # Only branches that existed by then (the root always did).
            existing = bisect.bisect_right(born, (created, "\uffff"))
            branch_id = born[rng.randrange(max(1, existing))][1]
            op = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "project_id": project.item["id"],
                "branch_id": branch_id,
            }
            if action in _COMPUTE_ACTIONS:
                endpoints = [e["id"] for e in project.endpoints if e["branch_id"] == branch_id]
                if endpoints:
                    op["endpoint_id"] = rng.choice(endpoints)
            status = "running" if now - created < 120 and rng.random() < 0.5 else _FINAL_STATUSES(rng)
            duration = 0 if status == "running" else rng.randint(50, 20000)
            op["action"] = action
            op["status"] = status
            op["failures_count"] = rng.randint(1, 3) if status in ("failed", "error") else 0
            if status in ("failed", "error"):
                op["error"] = rng.choice(
                    ("compute failed to start", "timeline is busy", "pageserver unavailable")
                )
                if rng.random() < 0.5:
                    op["retry_at"] = ts(created + 30)
            op["created_at"] = ts(created)
            op["updated_at"] = ts(created + duration // 1000)
            op["total_duration_ms"] = duration
            new.append(op)
        project.operations.extend(new)
        project.operations.sort(key=_newest_first, reverse=True)
        return new

    # ---------------------------------------------------------------------------------- totals

    def _refresh_project_totals(self, project: _Project) -> None:
        """Recompute the project fields derived from its branches and computes: storage, the last
        activity, and the counters of the billing period so far (from the computes' activity, as
        consumption history is; deleted computes count towards the project's)."""
        item = project.item
        if "synthetic_storage_size" in item:
            sizes = [b.get("logical_size", 0) for b in project.branches.values()]
            # Every branch's data plus WAL overhead; children share most pages with their parents.
            item["synthetic_storage_size"] = int(sizes[0] * 1.15 + sum(sizes[1:]) * CHILD_OWN_PERCENT / 100)
        last = [e["last_active"] for e in project.endpoints if "last_active" in e]
        if last:
            item["compute_last_active_at"] = max(last)
        else:
            item.pop("compute_last_active_at", None)
        usage = self._usage_since(project, month_start(self._now), self._now)
        for bid, branch in project.branches.items():
            active, cu, written, sent = usage.get(bid, (0, 0, 0, 0))
            branch["active_time_seconds"] = active
            branch["compute_time_seconds"] = branch["cpu_used_sec"] = cu
            branch["written_data_bytes"] = written
            branch["data_transfer_bytes"] = sent
        active, cu, written, sent = (
            sum(column) for column in zip((0, 0, 0, 0), *usage.values(), strict=True)
        )
        item["active_time"], item["cpu_used_sec"] = active, cu
        project.detail.update(
            active_time_seconds=active,
            compute_time_seconds=cu,
            written_data_bytes=written,
            data_transfer_bytes=sent,
        )
