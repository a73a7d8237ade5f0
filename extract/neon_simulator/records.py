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
        "annotations",
        "applications",
        "branches",
        "databases",
        "detail",
        "endpoints",
        "item",
        "meta",
        "operations",
        "profile",
        "retired",
        "roles",
        "scope",
    )

    def __init__(self, item: dict, detail: dict, scope: str | None, profile: tuple):
        self.item = item  # ProjectListItem
        self.detail = detail  # Project-only fields that are not derived at serve time
        self.scope = scope  # org_id, or None for a personal project
        self.profile = profile  # (activity, cu, root MiB, child MiB): drives consumption history
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
