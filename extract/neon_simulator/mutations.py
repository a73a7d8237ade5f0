"""Changes to an account after generation, each leaving the signals Neon leaves.

A rename bumps ``updated_at``; creating or deleting a branch, database or role records the finished
operations Neon records for it (``create_branch``, ``start_compute``, ``delete_timeline``,
``apply_config``). Time passing (``tick``, ``churn_day``) changes only the :data:`VOLATILE_FIELDS`
and records the compute operations it causes. Changes draw from the account's own seeded
generator, so the same sequence of changes is deterministic too.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable

from .records import _Project, _snapshot
from .timestamps import _DAY, _HOUR, month_start, ts

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


class Mutations:
    """How :class:`~neon_simulator.account.Account` changes, mixed into it; new records are built
    with the generator's building blocks (:mod:`~neon_simulator.generate`)."""

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

    def delete_branch(
        self, project_id: str, branch_id: str, *, cascade: bool = False, method: str = "user"
    ) -> list[str]:
        """Delete a branch with its computes, databases and roles; returns the deleted branch ids.
        Each stays restorable for a week (live.py), deleted by ``method`` (``user`` or ``ttl``).

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
                depth, created = project.meta[bid]
                had_compute = any(e["branch_id"] == bid for e in project.endpoints)
                project.retired[bid] = (created, self._now, depth, had_compute)
                self._keep_deleted(project, project.branches[bid], method)
                del project.branches[bid]
                del project.meta[bid]
                del project.databases[bid]
                del project.roles[bid]
                project.annotations.pop(bid, None)
                project.endpoints = [e for e in project.endpoints if e["branch_id"] != bid]  # their
                # activity stays in project.computes, and the branch's sizes in project.sizes
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
            self._reset_counters(start, chosen)

    def _reset_counters(self, start: int, refreshed) -> None:
        """A new billing period began since ``start``: every project's counters restart (those of
        ``refreshed`` projects already did)."""
        if month_start(start) != month_start(self._now):
            done = {id(p) for p in refreshed}
            for project in self._projects.values():
                if id(project) not in done:
                    self._refresh_project_totals(project)

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
            if seconds and "logical_size" in branch:
                branch["logical_size"] = max(0, int(branch["logical_size"] * rng.uniform(0.995, 1.02)))
                self._log_size(project, branch, start)  # hours before start were reported already
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
            self._reset_counters(start, [self._projects[pid] for pid in active])
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
        ``suspend_compute`` operations and its session of activity (what its consumption is
        computed from); returns its active seconds in the window."""
        now = self._now
        sessions = project.computes[endpoint["id"]].sessions
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
            sessions.append([began, began])
            self._record_operation(
                project, "start_compute", endpoint["branch_id"], endpoint_id=endpoint["id"], at=began, rng=rng
            )
        if rng.random() < 0.5:
            endpoint["current_state"] = "active"
            endpoint["last_active"] = ts(now)
            sessions[-1][1] = now
            return now - began
        suspended = began + rng.randrange(max(1, now - began))
        self._suspend(project, endpoint, suspended, rng)
        return suspended - began

    def _suspend(self, project: _Project, endpoint: dict, at: int, rng: random.Random) -> None:
        project.computes[endpoint["id"]].sessions[-1][1] = at  # its last session ends
        endpoint["current_state"] = "idle"
        endpoint["last_active"] = ts(at)
        endpoint["suspended_at"] = ts(at)
        self._record_operation(
            project, "suspend_compute", endpoint["branch_id"], endpoint_id=endpoint["id"], at=at, rng=rng
        )
