"""Deterministic synthetic Neon accounts: generation, read accessors and mutations (no HTTP).

Every record is stored in the exact JSON shape of Neon's API v2 (``tests/data/neon-openapi-v2.yaml``):
``Organization``, ``RegionResponse``, ``ProjectListItem``, ``Branch``, ``Endpoint``, ``Database``,
``Role`` and ``Operation``. Optional fields are sometimes present and sometimes absent; absent means
the key is omitted, never ``null``. Consumption history is not stored: it is a pure function of the
seed, the project id and the hour, so it costs no memory and never changes for past hours.

The same :class:`AccountSpec` (same seed and ``now``) always yields byte-identical data. Mutations
draw from their own seeded generator, so the same sequence of mutations is deterministic too.

Public accessors (``all_projects()``, ``branches(pid)``, ...) return deep copies of exactly what the
server serves. The server itself reads the live records through the package-internal ``_``-prefixed
methods while holding :attr:`Account.lock`.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from .consumption import ConsumptionHistory
from .records import _Project, _snapshot
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
    CONSUMPTION_METRICS,
    DEFAULT_REGION,
    REGIONS,
    AccountSpec,
)
from .timestamps import _DAY, _HOUR, month_start, next_month_start, parse_ts, ts

#: Fields that change on their own as time passes (what :meth:`Account.tick` touches), per resource.
#: Everything else only changes through an explicit mutation, which also bumps ``updated_at``. A
#: change-tracking client should ignore these when deciding whether a record really changed.
#: Project entries cover the list item and the ``GET /projects/{project_id}`` detail.
VOLATILE_FIELDS: dict[str, list[str]] = {
    "projects": [
        "active_time",
        "cpu_used_sec",
        "synthetic_storage_size",
        "compute_last_active_at",
        "active_time_seconds",
        "compute_time_seconds",
        "written_data_bytes",
        "data_transfer_bytes",
        "data_storage_bytes_hour",
        "consumption_period_start",
        "consumption_period_end",
    ],
    "branches": [
        "logical_size",
        "cpu_used_sec",
        "compute_time_seconds",
        "active_time_seconds",
        "written_data_bytes",
        "data_transfer_bytes",
    ],
    "endpoints": ["current_state", "pending_state", "last_active", "started_at", "suspended_at"],
}


def _newest_first(op: dict) -> tuple[str, str]:
    """Sort key of operations; sorted in reverse it gives the served order (newest first)."""
    return op["created_at"], op["id"]


# --------------------------------------------------------------------------------------------------
# The account
# --------------------------------------------------------------------------------------------------


class Account(ConsumptionHistory):
    """A synthetic Neon account. Build one with :meth:`generate`; all reads and writes are locked."""

    def __init__(self, spec: AccountSpec, now: datetime):
        self.spec = spec
        self._now = int(now.timestamp())
        #: Guards every read and write; the server holds it while it builds a response.
        self.lock = threading.RLock()
        self._mutation_rng = random.Random(f"{spec.seed}:mutations")
        self._used_ids: set[str] = set()
        self._last_database_id = 100000
        self._orgs: list[dict] = []
        self._org_by_id: dict[str, dict] = {}
        self._plan_orgs: set[str] = set()
        self._regions: list[dict] = []
        self._user: dict = {}
        self._projects: dict[str, _Project] = {}
        # Per scope (org id or None), (created_at, project id) in ascending order for keyset paging.
        self._order: dict[str | None, list[tuple[str, str]]] = {}
        self._consumption_since = 0

    # ---------------------------------------------------------------------------------- generation

    @classmethod
    def generate(cls, spec: AccountSpec | None = None) -> Account:
        """Generate an account from ``spec`` (default: ``AccountSpec()``), deterministically."""
        spec = spec or AccountSpec()
        now = spec.now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
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
        for index, n_branches in enumerate(self._branch_counts(rng)):
            self._add_project(index, n_branches, rng)

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
            "plan": rng.choice(_PLANS) if paid else "free",
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
        profile = (rng.random(), rng.choice(_CU_SIZES[:4]), rng.randint(30, 40000), rng.randint(0, 20000))
        project = _Project(item, detail, org["id"] if org else None, profile)
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
        if state == "init" and rng.random() < 0.5:
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
        if "last_active" in endpoint:
            history = int((now - created) * rng.random() * 0.3)
            self._add_usage(project, branch, endpoint, history, rng)

    @staticmethod
    def _add_usage(project: _Project, branch: dict, endpoint: dict, seconds: int, rng: random.Random) -> None:
        """Credit ``seconds`` of activity of ``endpoint`` to its branch and project counters."""
        if seconds <= 0:
            return
        cu = (endpoint["autoscaling_limit_min_cu"] + endpoint["autoscaling_limit_max_cu"]) / 2
        compute = int(seconds * cu * rng.uniform(0.3, 1.0))
        branch["active_time_seconds"] += seconds
        branch["compute_time_seconds"] += compute
        branch["cpu_used_sec"] += compute
        branch["written_data_bytes"] += int(compute * rng.uniform(1e3, 5e4))
        branch["data_transfer_bytes"] += int(compute * rng.uniform(1e3, 2e4))
        project.item["active_time"] += seconds
        project.item["cpu_used_sec"] += compute

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
        """Recompute the project fields derived from its branches and computes."""
        item = project.item
        if "synthetic_storage_size" in item:
            sizes = [b.get("logical_size", 0) for b in project.branches.values()]
            # Every branch's data plus WAL overhead; children share most pages with their parents.
            item["synthetic_storage_size"] = int(sizes[0] * 1.15 + sum(sizes[1:]) * 0.1)
        last = [e["last_active"] for e in project.endpoints if "last_active" in e]
        if last:
            item["compute_last_active_at"] = max(last)
        else:
            item.pop("compute_last_active_at", None)

    # ---------------------------------------------------------------------------------- reads

    @property
    def now(self) -> datetime:
        """The account clock (UTC)."""
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def now_epoch(self) -> int:
        """The account clock in epoch seconds."""
        return self._now

    @property
    def organizations(self) -> list[dict]:
        """``Organization`` records, as ``/users/me/organizations`` serves them."""
        with self.lock:
            return _snapshot(self._orgs)

    @property
    def regions(self) -> list[dict]:
        """``RegionResponse`` records, as ``/regions`` serves them."""
        with self.lock:
            return _snapshot(self._regions)

    @property
    def user(self) -> dict:
        """The ``CurrentUserInfoResponse`` of the personal key's user."""
        return _snapshot(self._user)

    def plan_org_ids(self) -> set[str]:
        """Ids of the organizations whose plan includes consumption history."""
        return set(self._plan_orgs)

    @property
    def personal_api_key(self) -> str:
        """The default personal API key (``napi_`` + 59 characters, derived from the seed)."""
        return self._api_key("personal")

    def org_api_key(self, org_id: str) -> str:
        """A deterministic organization API key for ``org_id``."""
        if org_id not in self._org_by_id:
            raise KeyError(org_id)
        return self._api_key(f"org:{org_id}")

    def _api_key(self, purpose: str) -> str:
        digest = hashlib.sha512(f"{self.spec.seed}:api-key:{purpose}".encode()).digest()
        return "napi_" + "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest[:59])

    def counts(self) -> dict[str, int]:
        """How many records of each kind the account holds right now."""
        with self.lock:
            projects = self._projects.values()
            return {
                "organizations": len(self._orgs),
                "projects": len(self._projects),
                "branches": sum(len(p.branches) for p in projects),
                "endpoints": sum(len(p.endpoints) for p in projects),
                "databases": sum(len(d) for p in projects for d in p.databases.values()),
                "roles": sum(len(r) for p in projects for r in p.roles.values()),
                "operations": sum(len(p.operations) for p in projects),
            }

    def all_projects(self, org_id: str | None = None) -> list[dict]:
        """Every ``ProjectListItem`` (optionally of one org), in the served order: newest first."""
        with self.lock:
            scopes = [org_id] if org_id is not None else list(self._order)
            keys = sorted((k for s in scopes for k in self._order.get(s, [])), reverse=True)
            return _snapshot([self._projects[pid].item for _, pid in keys])

    def project(self, project_id: str) -> dict:
        """The ``Project`` detail of ``GET /projects/{project_id}``."""
        with self.lock:
            return _snapshot(self._project_detail(project_id))

    def branches(self, project_id: str) -> list[dict]:
        """``Branch`` records of a project in the default served order (``updated_at`` desc, id desc)."""
        with self.lock:
            found = self._project(project_id).branches.values()
            return _snapshot(sorted(found, key=lambda b: (b["updated_at"], b["id"]), reverse=True))

    def branch_depths(self, project_id: str) -> dict[str, int]:
        """Depth of each branch below its root (0 for roots)."""
        with self.lock:
            return {bid: depth for bid, (depth, _) in self._project(project_id).meta.items()}

    def endpoints(self, project_id: str) -> list[dict]:
        """``Endpoint`` records of a project, as ``/projects/{project_id}/endpoints`` serves them."""
        with self.lock:
            return _snapshot(self._project(project_id).endpoints)

    def databases(self, project_id: str, branch_id: str) -> list[dict]:
        """``Database`` records of a branch."""
        with self.lock:
            return _snapshot(self._branch_children(project_id, branch_id, "databases"))

    def roles(self, project_id: str, branch_id: str) -> list[dict]:
        """``Role`` records of a branch (with ``password`` only when the spec serves secrets)."""
        with self.lock:
            return _snapshot(self._branch_children(project_id, branch_id, "roles"))

    def operations(self, project_id: str) -> list[dict]:
        """``Operation`` records of a project, newest first."""
        with self.lock:
            return _snapshot(self._project(project_id).operations)

    def annotations(self, project_id: str) -> dict[str, dict]:
        """``AnnotationData`` per branch id (only annotated branches)."""
        with self.lock:
            return _snapshot(self._project(project_id).annotations)

    def applications(self, project_id: str) -> list[str]:
        """Applications installed on a project (the ``applications`` map value; often empty)."""
        with self.lock:
            return list(self._project(project_id).applications)

    def served_secrets(self) -> set[str]:
        """Every secret value the server can currently serve (role passwords)."""
        with self.lock:
            return {
                role["password"]
                for project in self._projects.values()
                for roles in project.roles.values()
                for role in roles
                if "password" in role
            }

    def consumption(self, project_id: str, granularity: str = "daily") -> list[dict]:
        """All consumption timeframes of a project, oldest first.

        Each entry is ``{"timeframe_start", "timeframe_end", "metrics": {metric_name: value}}`` with
        all :data:`CONSUMPTION_METRICS`. Empty for projects without a consumption plan. The server
        serves the same numbers, grouped into billing periods and filtered by the query.
        """
        with self.lock:
            project = self._project(project_id)
            return [
                {
                    "timeframe_start": ts(start),
                    "timeframe_end": ts(end),
                    "metrics": dict(zip(CONSUMPTION_METRICS, values, strict=True)),
                }
                for start, end, values in self._consumption_frames(project, granularity, 0, self._now)
            ]

    # ----------------------------------------------------- package-internal live reads (server.py)

    def _project(self, project_id: str) -> _Project:
        try:
            return self._projects[project_id]
        except KeyError:
            raise KeyError(f"project {project_id} not found") from None

    def _branch_children(self, project_id: str, branch_id: str, kind: str) -> list[dict]:
        project = self._project(project_id)
        if branch_id not in project.branches:
            raise KeyError(f"branch {branch_id} not found")
        return getattr(project, kind)[branch_id]

    def _project_detail(self, project_id: str) -> dict:
        """The ``Project`` shape: list-item fields it shares plus detail-only (derived) fields."""
        project = self._project(project_id)
        item = project.item
        detail = {k: v for k, v in item.items() if k not in ("active_time", "org_name")}
        branches = project.branches.values()
        period_start = month_start(self._now)
        detail.update(project.detail)
        detail["data_storage_bytes_hour"] = item.get("synthetic_storage_size", 0) * (
            (self._now - period_start) // _HOUR
        )
        detail["data_transfer_bytes"] = sum(b["data_transfer_bytes"] for b in branches)
        detail["written_data_bytes"] = sum(b["written_data_bytes"] for b in branches)
        detail["compute_time_seconds"] = sum(b["compute_time_seconds"] for b in branches)
        detail["active_time_seconds"] = item["active_time"]
        detail["consumption_period_start"] = ts(period_start)
        detail["consumption_period_end"] = ts(next_month_start(self._now))
        return detail

    def _has_org(self, org_id: str) -> bool:
        return org_id in self._org_by_id

    # ---------------------------------------------------------------------------------- mutations

    def delete_project(self, project_id: str) -> None:
        """Delete a project with all its branches, computes, databases, roles and operations."""
        with self.lock:
            project = self._project(project_id)
            del self._projects[project_id]
            self._order[project.scope].remove((project.item["created_at"], project_id))

    def create_branch(self, project_id: str, parent_id: str | None = None, name: str | None = None) -> dict:
        """Create a child branch (of the default branch unless ``parent_id``) at the account clock.

        It inherits its parent's roles and databases (new database ids), gets a read-write compute
        with the usual probability, and finished operations are recorded as Neon records them:
        ``create_branch``, and ``start_compute`` for each compute created with it.
        Returns a copy of the new ``Branch``.
        """
        with self.lock:
            project = self._project(project_id)
            if parent_id is None:
                parent = next(b for b in project.branches.values() if b["default"])
            elif parent_id in project.branches:
                parent = project.branches[parent_id]
            else:
                raise KeyError(f"branch {parent_id} not found")
            rng = self._mutation_rng
            if name is None:
                name = self._child_name(project, rng)
            elif any(b["name"] == name for b in project.branches.values()):
                raise ValueError(f"branch name {name!r} already exists in project {project_id}")
            branch = self._add_child(project, parent, self._now, name, rng, fresh=True)
            self._record_operation(project, "create_branch", branch["id"])
            for endpoint in project.endpoints:
                if endpoint["branch_id"] == branch["id"]:
                    self._record_operation(project, "start_compute", branch["id"], endpoint_id=endpoint["id"])
            self._refresh_project_totals(project)
            return _snapshot(branch)

    def delete_branch(self, project_id: str, branch_id: str, *, cascade: bool = False) -> list[str]:
        """Delete a branch with its computes, databases and roles; returns the deleted branch ids.

        Like Neon, a branch that has children is refused (``ValueError``) unless ``cascade=True``,
        which deletes its descendants first (deepest first). The default branch cannot be deleted.
        A finished ``delete_timeline`` operation is recorded per deleted branch.
        """
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            if project.branches[branch_id]["default"]:
                raise ValueError("the default branch cannot be deleted")
            doomed = self._descendants(project, branch_id)
            if doomed and not cascade:
                raise ValueError(
                    f"branch {branch_id} has children {sorted(doomed)}; delete them first or cascade"
                )
            order = sorted(doomed, key=lambda b: project.meta[b][0], reverse=True) + [branch_id]
            for bid in order:
                del project.branches[bid]
                del project.meta[bid]
                del project.databases[bid]
                del project.roles[bid]
                project.annotations.pop(bid, None)
                project.endpoints = [e for e in project.endpoints if e["branch_id"] != bid]
                self._record_operation(project, "delete_timeline", bid)
            self._refresh_project_totals(project)
            return order

    @staticmethod
    def _descendants(project: _Project, branch_id: str) -> set[str]:
        children: dict[str, list[str]] = {}
        for b in project.branches.values():
            if "parent_id" in b:
                children.setdefault(b["parent_id"], []).append(b["id"])
        found, stack = set(), [branch_id]
        while stack:
            for child in children.get(stack.pop(), []):
                found.add(child)
                stack.append(child)
        return found

    def rename_branch(self, project_id: str, branch_id: str, name: str) -> dict:
        """Rename a branch (bumps its ``updated_at``); returns a copy of it."""
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            if any(b["name"] == name and b["id"] != branch_id for b in project.branches.values()):
                raise ValueError(f"branch name {name!r} already exists in project {project_id}")
            branch = project.branches[branch_id]
            branch["name"] = name
            branch["updated_at"] = ts(self._now)
            return _snapshot(branch)

    def create_database(
        self, project_id: str, branch_id: str, name: str, owner_name: str | None = None
    ) -> dict:
        """Create a database on a branch (owned by its first role unless ``owner_name``), as the API,
        console or CLI do: Neon records a finished ``apply_config`` operation naming the branch (and
        its read-write compute, if any). Returns a copy of the new ``Database``."""
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            databases = project.databases[branch_id]
            if any(d["name"] == name for d in databases):
                raise ValueError(f"database {name!r} already exists on branch {branch_id}")
            self._last_database_id += self._mutation_rng.randint(1, 97)
            database = {
                "id": self._last_database_id,
                "branch_id": branch_id,
                "name": name,
                "owner_name": owner_name or project.roles[branch_id][0]["name"],
                "created_at": ts(self._now),
                "updated_at": ts(self._now),
            }
            databases.append(database)
            self._record_config_change(project, branch_id)
            return _snapshot(database)

    def create_role(self, project_id: str, branch_id: str, name: str) -> dict:
        """Create a role on a branch; Neon records an ``apply_config`` operation. Returns a copy."""
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            roles = project.roles[branch_id]
            if any(r["name"] == name for r in roles):
                raise ValueError(f"role {name!r} already exists on branch {branch_id}")
            role = {
                "branch_id": branch_id,
                "name": name,
                "protected": False,
                "authentication_method": "password",
                "created_at": ts(self._now),
                "updated_at": ts(self._now),
            }
            if self.spec.serve_secrets:
                role["password"] = self._password(branch_id, name)
            roles.append(role)
            self._record_config_change(project, branch_id)
            return _snapshot({k: v for k, v in role.items() if k != "password"})

    def _record_config_change(self, project: _Project, branch_id: str) -> None:
        computes = [
            e["id"] for e in project.endpoints if e["branch_id"] == branch_id and e["type"] == "read_write"
        ]
        self._record_operation(
            project, "apply_config", branch_id, endpoint_id=computes[0] if computes else None
        )

    def rename_project(self, project_id: str, name: str) -> dict:
        """Rename a project (bumps its ``updated_at``); returns a copy of the list item."""
        with self.lock:
            item = self._project(project_id).item
            item["name"] = name
            item["updated_at"] = ts(self._now)
            return _snapshot(item)

    def add_operations(self, project_id: str, n: int) -> list[dict]:
        """Record ``n`` new operations from the last ten minutes; returns copies, newest first."""
        with self.lock:
            project = self._project(project_id)
            new = self._add_operations(project, n, self._mutation_rng, recent=True)
            return _snapshot(sorted(new, key=lambda o: (o["created_at"], o["id"]), reverse=True))

    def expire_operations(self, older_than_days: int) -> int:
        """Forget operations created more than ``older_than_days`` before the account clock, as
        Neon does after six months; returns how many were dropped."""
        with self.lock:
            cutoff = ts(self._now - older_than_days * _DAY)
            dropped = 0
            for project in self._projects.values():
                kept = [op for op in project.operations if op["created_at"] >= cutoff]
                dropped += len(project.operations) - len(kept)
                project.operations = kept
            return dropped

    def _record_operation(
        self,
        project: _Project,
        action: str,
        branch_id: str,
        *,
        endpoint_id: str | None = None,
        at: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """A finished operation at ``at`` (default: the account clock)."""
        rng = rng or self._mutation_rng
        at = self._now if at is None else at
        duration = rng.randint(200, 5000)
        op = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "project_id": project.item["id"],
            "branch_id": branch_id,
            "action": action,
            "status": "finished",
            "failures_count": 0,
            "created_at": ts(at),
            "updated_at": ts(min(self._now, at + duration // 1000)),
            "total_duration_ms": duration,
        }
        if endpoint_id:
            op["endpoint_id"] = endpoint_id
        project.operations.insert(0, op)
        project.operations.sort(key=lambda o: (o["created_at"], o["id"]), reverse=True)

    def tick(self, hours: int = 1, project_ids: Iterable[str] | None = None) -> None:
        """Advance the clock by ``hours`` and let usage happen (in ``project_ids`` only, if given).

        Only :data:`VOLATILE_FIELDS` change (plus the consumption history growing by the new hours,
        and the ``start_compute`` / ``suspend_compute`` operations Neon records): computes start and
        suspend, branches and projects accumulate compute/active time, written and transferred
        bytes, and logical sizes drift. Names, states of branches, ``updated_at`` and every other
        stable field stay as they are.
        """
        if hours < 1:
            raise ValueError("hours must be >= 1")
        with self.lock:
            start = self._now
            self._now += int(hours) * _HOUR
            rng = random.Random(f"{self.spec.seed}:tick:{self._now}")
            chosen = (
                self._projects.values() if project_ids is None else [self._projects[p] for p in project_ids]
            )
            for project in chosen:
                self._tick_project(project, start, rng)

    def _tick_project(
        self, project: _Project, start: int, rng: random.Random, *, force: bool = False
    ) -> None:
        """Usage of one project's computes since ``start``; ``force``: at least one is active."""
        eligible = [
            e
            for e in project.endpoints
            if project.branches[e["branch_id"]]["current_state"] == "ready" and not e["disabled"]
        ]
        forced = rng.choice(eligible) if force and eligible else None
        for endpoint in eligible:
            branch = project.branches[endpoint["branch_id"]]
            seconds = self._tick_endpoint(project, endpoint, start, rng, force=endpoint is forced)
            if seconds:
                self._add_usage(project, branch, endpoint, seconds=seconds, rng=rng)
                if "logical_size" in branch:
                    branch["logical_size"] = max(0, int(branch["logical_size"] * rng.uniform(0.995, 1.02)))
        self._refresh_project_totals(project)

    def churn_day(self, active_share: float = 0.3, changed_share: float = 0.05) -> dict[str, list[str]]:
        """Advance the account by a day of churn: ``active_share`` of the projects have compute
        activity, and ``changed_share`` of them change, in turn: a branch created, a leaf branch
        deleted, a database created, the project renamed. Every change leaves the signals Neon
        leaves (operations, ``updated_at``). Returns what happened: the ``active`` and ``changed``
        project ids, and per kind of change the ids of the objects involved."""
        with self.lock:
            start = self._now
            self._now += 24 * _HOUR
            rng = random.Random(f"{self.spec.seed}:churn:{self._now}")
            ids = sorted(self._projects)
            runnable = [
                pid
                for pid in ids
                if any(
                    self._projects[pid].branches[e["branch_id"]]["current_state"] == "ready"
                    and not e["disabled"]
                    for e in self._projects[pid].endpoints
                )
            ]
            active = sorted(rng.sample(runnable, min(len(runnable), round(active_share * len(ids)))))
            for pid in active:
                self._tick_project(self._projects[pid], start, rng, force=True)
            changed = sorted(rng.sample(ids, round(changed_share * len(ids))))
            happened: dict[str, list[str]] = {
                "active": active,
                "changed": changed,
                "branch_created": [],
                "branch_deleted": [],
                "database_created": [],
                "project_renamed": [],
            }
            kinds = ("branch_created", "branch_deleted", "database_created", "project_renamed")
            for n, pid in enumerate(changed):
                project = self._projects[pid]
                kind = kinds[n % len(kinds)]
                leaves = [
                    bid
                    for bid, b in project.branches.items()
                    if not b["default"] and not self._descendants(project, bid)
                ]
                if kind == "branch_deleted" and not leaves:
                    kind = "branch_created"
                if kind == "branch_created":
                    happened[kind].append(self.create_branch(pid)["id"])
                elif kind == "branch_deleted":
                    victim = rng.choice(sorted(leaves))
                    self.delete_branch(pid, victim)
                    happened[kind].append(victim)
                elif kind == "database_created":
                    bid = rng.choice(sorted(project.branches))
                    taken = {d["name"] for d in project.databases[bid]}
                    name = next(f"db_{i}" for i in range(1, 1000) if f"db_{i}" not in taken)
                    happened[kind].append(str(self.create_database(pid, bid, name)["id"]))
                else:
                    self.rename_project(pid, f"{project.item['name'][:50]}-renamed")
                    happened[kind].append(pid)
            return happened

    def _tick_endpoint(
        self, project: _Project, endpoint: dict, start: int, rng: random.Random, *, force: bool = False
    ) -> int:
        """Move one compute through the elapsed window, recording the ``start_compute`` and
        ``suspend_compute`` operations; returns its active seconds in the window."""
        now = self._now
        endpoint.pop("pending_state", None)
        was_active = endpoint["current_state"] == "active"
        started = force or rng.random() < (0.8 if was_active else 0.3)
        if not started:
            if not was_active:
                return 0
            suspended = start + rng.randrange(now - start)
            self._suspend(project, endpoint, suspended, rng)
            return suspended - start
        began = start if was_active else start + rng.randrange(now - start)
        if not was_active:
            endpoint["started_at"] = ts(began)
            self._record_operation(
                project, "start_compute", endpoint["branch_id"], endpoint_id=endpoint["id"], at=began, rng=rng
            )
        if rng.random() < 0.5:
            endpoint["current_state"] = "active"
            endpoint["last_active"] = ts(now)
            return now - began
        suspended = began + rng.randrange(max(1, now - began))
        self._suspend(project, endpoint, suspended, rng)
        return suspended - began

    def _suspend(self, project: _Project, endpoint: dict, at: int, rng: random.Random) -> None:
        endpoint["current_state"] = "idle"
        endpoint["last_active"] = ts(at)
        endpoint["suspended_at"] = ts(at)
        self._record_operation(
            project, "suspend_compute", endpoint["branch_id"], endpoint_id=endpoint["id"], at=at, rng=rng
        )
