"""A deterministic synthetic Neon account (no HTTP): the store and its reads.

Every record is stored in the exact JSON shape of Neon's API v2 (``neon-openapi-v2.yaml`` in this package):
``Organization``, ``RegionResponse``, ``ProjectListItem``, ``Branch``, ``Endpoint``, ``Database``,
``Role`` and ``Operation``. Optional fields are sometimes present and sometimes absent; absent means
the key is omitted, never ``null``.

:class:`Account` is the store and its reads; it is built and changed by the mixins of the modules
beside it, each in a file of its own:

- :mod:`~neon_simulator.generate`: ``Account.generate(spec)``, byte-identical for equal specs;
- :mod:`~neon_simulator.mutations`: changes (``create_branch``, ``tick``, ``churn_day``, ...) and
  the operations and ``updated_at`` they leave;
- :mod:`~neon_simulator.consumption`: consumption history per project and per branch, computed on
  demand, never stored;
- :mod:`~neon_simulator.reference`: regions, metric names, name tables, ``AccountSpec`` and presets.

Public accessors (``all_projects()``, ``branches(pid)``, ...) return deep copies of exactly what the
server serves. The server itself reads the live records through the package-internal ``_``-prefixed
methods while holding :attr:`Account.lock`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from .access import AccessControl
from .backups import Backups
from .consumption import ConsumptionHistory
from .generate import Generation
from .live import LiveApi
from .mutations import Mutations
from .records import _Project, _snapshot
from .reference import _ID_ALPHABET, BRANCH_CONSUMPTION_METRICS, CONSUMPTION_METRICS, AccountSpec
from .reference import REGIONS as REGIONS  # re-exported: tests read neon_simulator.account.REGIONS
from .timestamps import _HOUR, month_start, next_month_start, ts

# --------------------------------------------------------------------------------------------------
# The account
# --------------------------------------------------------------------------------------------------


class Account(Generation, Mutations, ConsumptionHistory, AccessControl, LiveApi, Backups):
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
        # The listings served without a handler of their own (routes.Routes.listing): route -> the
        # records under a parent id (organization, project or branch), as Neon sends them now.
        self._listed: dict[str, Callable[[str], list[dict]]] = {}
        self._consumption_since = 0
        self._branch_consumption_since = 0
        self._init_access()  # members, API keys, shares, VPC endpoints (access.py)
        self._init_live()  # project members, deleted branches (live.py)
        self._init_backups()  # snapshots and backup schedules (backups.py)

    # ---------------------------------------------------------------------------------- reads

    @property
    def now(self) -> datetime:
        """The account clock (UTC)."""
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def now_epoch(self) -> int:
        """The account clock in epoch seconds."""
        return self._now

    def listed_under(self, route: str, parent_id: str) -> list[dict]:
        """The records a listing without a handler of its own serves under one parent (an
        organization, project or branch id); none for a route nothing registered."""
        records = self._listed.get(route)
        return records(parent_id) if records else []

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
        """Every secret value the server can currently serve (role passwords, API key tokens)."""
        with self.lock:
            return {
                role["password"]
                for project in self._projects.values()
                for roles in project.roles.values()
                for role in roles
                if "password" in role
            } | self._served_key_tokens()

    def consumption(
        self, project_id: str, granularity: str = "daily", since: datetime | None = None
    ) -> list[dict]:
        """All consumption timeframes of a project, oldest first (those that begin at ``since`` or
        later, when given).

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
                for start, end, values in self._project_frames(
                    project, granularity, int(since.timestamp()) if since else 0, self._now
                )
            ]

    def branch_consumption(self, project_id: str, granularity: str = "daily") -> dict[str, list[dict]]:
        """Branch id -> all its consumption timeframes, oldest first, since branch-level history
        began, for every branch the project has had (deleted ones too).

        Entries are shaped as in :meth:`consumption`, with the :data:`BRANCH_CONSUMPTION_METRICS`.
        Per timeframe and metric, a project's branches add up to its own :meth:`consumption`.
        """
        with self.lock:
            project = self._project(project_id)
            if project.scope not in self._plan_orgs:
                return {}
            return {
                bid: [
                    {
                        "timeframe_start": ts(start),
                        "timeframe_end": ts(end),
                        "metrics": dict(zip(BRANCH_CONSUMPTION_METRICS, values, strict=True)),
                    }
                    for start, end, values in frames
                ]
                for bid, frames in sorted(self._branch_frames(project, granularity, 0, self._now).items())
            }

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
        period_start = month_start(self._now)
        detail.update(project.detail)  # with the period's counters (generate.py)
        detail["data_storage_bytes_hour"] = self._storage_byte_hours(
            project, period_start, self._now // _HOUR * _HOUR
        )
        detail["consumption_period_start"] = ts(period_start)
        detail["consumption_period_end"] = ts(next_month_start(self._now))
        return detail

    def _has_org(self, org_id: str) -> bool:
        return org_id in self._org_by_id
