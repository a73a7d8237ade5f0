"""What an account stores per project (:class:`_Project`), and the copies it hands out.

Records are plain dicts in the JSON shape of Neon's API, so the server serves them as they are;
both names here are package-internal.
"""

from __future__ import annotations

import json


def _snapshot(obj):
    """A deep copy of JSON-shaped data (faster than ``copy.deepcopy`` for plain dicts and lists)."""
    return json.loads(json.dumps(obj))


class _Project:
    """Everything stored for one project (compact: per-project containers, no global indexes)."""

    __slots__ = (
        "activity",
        "annotations",
        "applications",
        "branches",
        "computes",
        "databases",
        "detail",
        "endpoints",
        "item",
        "meta",
        "operations",
        "retired",
        "roles",
        "scope",
        "sizes",
    )

    def __init__(self, item: dict, detail: dict, scope: str | None, activity: float):
        self.item = item  # ProjectListItem
        self.detail = detail  # Project-only fields that are not derived at serve time
        self.scope = scope  # org_id, or None for a personal project
        self.activity = activity  # 0..1: how busy its computes are on the days before their last start
        self.branches: dict[str, dict] = {}  # branch id -> Branch, in creation order
        self.meta: dict[str, tuple[int, int]] = {}  # branch id -> (depth below its root, created epoch)
        self.endpoints: list[dict] = []  # Endpoint, in creation order
        self.databases: dict[str, list[dict]] = {}  # branch id -> Database list
        self.roles: dict[str, list[dict]] = {}  # branch id -> Role list
        self.operations: list[dict] = []  # Operation, newest first
        self.annotations: dict[str, dict] = {}  # branch id -> AnnotationData
        self.applications: list[str] = []  # installed applications (ApplicationType)
        # branch id -> (created epoch, deleted epoch, depth, had a compute) of deleted branches:
        # their consumption history outlives them
        self.retired: dict[str, tuple[int, int, int, bool]] = {}
        # What consumption history is computed from, kept after a branch or compute is deleted:
        # compute id -> its activity; branch id -> [(from epoch, logical size in bytes), ...]
        self.computes: dict[str, _Compute] = {}
        self.sizes: dict[str, list[tuple[int, int]]] = {}


class _Compute:
    """When one compute (endpoint) was active, and at what size: what its consumption is computed
    from (:mod:`~neon_simulator.consumption`). It outlives the compute, as Neon's history does.

    Before ``quiet_from`` the compute is active on some days, in one block a day drawn from ``key``
    and the day; from then on only in its ``sessions``, ``[start, end)`` pairs in epoch seconds,
    each recorded when it starts and ended at its ``last_active``.
    """

    __slots__ = ("branch_id", "created", "high4", "key", "low4", "quiet_from", "sessions", "writes")

    def __init__(self, branch_id: str, created: int, low4: int, high4: int, key: int, writes: bool):
        self.branch_id = branch_id
        self.created = created
        self.low4 = low4  # autoscaling_limit_min_cu x 4 (sizes are multiples of 0.25 CU)
        self.high4 = high4  # autoscaling_limit_max_cu x 4
        self.key = key  # 64 bits drawn from the seed and the compute id
        self.writes = writes  # a read-write compute; read-only replicas write no WAL
        self.quiet_from = created
        self.sessions: list[list[int]] = []
