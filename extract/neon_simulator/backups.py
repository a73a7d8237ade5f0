"""Snapshots and backup schedules: ``GET /projects/{project_id}/snapshots`` and
``GET /projects/{project_id}/branches/{branch_id}/backup_schedule`` (in the 2.7.3 spec and the live
one alike).

**Backup schedules.** On a paid organization's project, the default root branch has a schedule
(:data:`SCHEDULED_PERCENT` of them), one of :data:`SCHEDULES` with the hour (and day) drawn; any
other branch has none (``{"schedule": []}``), as has every branch of a free or personal project
(Neon: "Requires a paid plan").

**Snapshots.** Scheduled ones are derived from the schedule and the account clock, never stored:
one at each time the schedule names since the branch was created, kept for the entry's
``retention_seconds`` (so they expire as the clock moves on), ``manual: false``. The oldest one of a
branch is billed at its full logical size (``full_size``), the later ones on what changed since the
one before (``diff_size``, 1-5% of the branch's size); one taken in the last hour has no size yet
(Neon: not calculated yet, not charged). Manual ones are drawn once (a few projects, any plan):
``full_size``, half of them with an ``expires_at``. A deleted branch's scheduled snapshots go with it.

What Neon bills for them (``snapshot_storage_bytes_month``) is computed on its own by
:mod:`~neon_simulator.consumption`, not from this listing.
"""

from __future__ import annotations

import calendar
import hashlib
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from neon_api_source import listings

from .records import _snapshot
from .timestamps import _DAY, _HOUR, parse_ts, ts

if TYPE_CHECKING:
    from .records import _Project

#: The share (%) of paid projects whose default branch has a backup schedule.
SCHEDULED_PERCENT = 60
#: The schedules drawn from (``hour`` and ``day`` filled in): daily for a week; daily plus weekly
#: for four weeks; monthly for three months.
SCHEDULES = (
    ({"frequency": "daily", "retention_seconds": 7 * _DAY},),
    (
        {"frequency": "daily", "retention_seconds": 7 * _DAY},
        {"frequency": "weekly", "retention_seconds": 28 * _DAY},
    ),
    ({"frequency": "monthly", "retention_seconds": 90 * _DAY},),
)


class Backups:
    """Snapshots and backup schedules of :class:`~neon_simulator.account.Account`, mixed in."""

    def _init_backups(self) -> None:
        self._schedules: dict[str, dict[str, list[dict]]] = {}  # project id -> branch id -> items
        self._manual_snapshots: dict[str, list[dict]] = {}  # project id -> Snapshot records
        self._listed[listings.BACKUP_SNAPSHOTS.route] = self.snapshots  # routes.Routes.listing

    def _generate_backups(self) -> None:
        rng = random.Random(f"{self.spec.seed}:backups")
        for pid in sorted(self._projects):
            project = self._projects[pid]
            default = next(b for b in project.branches.values() if b["default"])
            if project.scope in self._plan_orgs and rng.random() < SCHEDULED_PERCENT / 100:
                items = []
                hour = rng.randrange(24)
                for item in rng.choice(SCHEDULES):
                    item = dict(item, hour=hour)
                    if item["frequency"] == "weekly":
                        item["day"] = rng.randint(1, 7)  # ISO weekday
                    elif item["frequency"] == "monthly":
                        item["day"] = 1
                    items.append(item)
                self._schedules.setdefault(pid, {})[default["id"]] = items
            if rng.random() < 0.2:
                for n in range(rng.randint(1, 3)):
                    self._add_manual_snapshot(project, default, n, rng)

    def _add_manual_snapshot(self, project: _Project, branch: dict, n: int, rng: random.Random) -> None:
        born = parse_ts(branch["created_at"])
        taken = max(born, self._now - rng.randrange(_HOUR, 60 * _DAY))
        snapshot = {
            "id": _snapshot_id(branch["id"], f"manual-{n}-{taken}"),
            "name": f"{branch['name']}-before-release-{n + 1}",
            "lsn": _lsn(taken),
            "timestamp": ts(taken),
            "source_branch_id": branch["id"],
            "created_at": ts(taken),
            "manual": True,
            "full_size": int(_size(branch) * rng.uniform(0.7, 1.0)),
        }
        if rng.random() < 0.5:
            snapshot["expires_at"] = ts(self._now + rng.randrange(_DAY, 30 * _DAY))
        self._manual_snapshots.setdefault(project.item["id"], []).append(snapshot)

    # ---------------------------------------------------------------------------------- reads

    def backup_schedule(self, project_id: str, branch_id: str) -> list[dict]:
        """A branch's ``BackupScheduleItem`` list ([] when it has none)."""
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            return _snapshot(self._schedules.get(project_id, {}).get(branch_id, []))

    def snapshots(self, project_id: str) -> list[dict]:
        """The project's ``Snapshot`` records at the account clock, newest first."""
        with self.lock:
            project = self._project(project_id)
            found = [
                s
                for s in self._manual_snapshots.get(project_id, [])
                if "expires_at" not in s or parse_ts(s["expires_at"]) > self._now
            ]
            for branch_id, items in self._schedules.get(project_id, {}).items():
                if branch_id in project.branches:
                    found += self._scheduled_snapshots(project.branches[branch_id], items)
            return _snapshot(sorted(found, key=lambda s: (s["created_at"], s["id"]), reverse=True))

    def set_backup_schedule(self, project_id: str, branch_id: str, items: list[dict]) -> None:
        """Replace a branch's schedule (``[]``: none); its scheduled snapshots follow at once."""
        with self.lock:
            project = self._project(project_id)
            if branch_id not in project.branches:
                raise KeyError(f"branch {branch_id} not found")
            schedules = self._schedules.setdefault(project_id, {})
            if items:
                schedules[branch_id] = _snapshot(items)
            else:
                schedules.pop(branch_id, None)

    def _scheduled_snapshots(self, branch: dict, items: list[dict]) -> list[dict]:
        born, size = parse_ts(branch["created_at"]), _size(branch)
        taken: list[tuple[int, dict]] = []
        for item in items:
            start = max(born, self._now - item["retention_seconds"])
            day = start - start % _DAY
            while day <= self._now:
                moment = day + item["hour"] * _HOUR
                if start <= moment <= self._now and _on_schedule(item, day):
                    taken.append((moment, item))
                day += _DAY
        taken.sort(key=lambda t: t[0])
        found = []
        for index, (moment, item) in enumerate(taken):
            snapshot_id = _snapshot_id(branch["id"], f"{item['frequency']}-{moment}")
            snapshot = {
                "id": snapshot_id,
                "name": f"{branch['name']}-{item['frequency']}-{ts(moment)[:10]}",
                "lsn": _lsn(moment),
                "timestamp": ts(moment),
                "source_branch_id": branch["id"],
                "created_at": ts(moment),
                "expires_at": ts(moment + item["retention_seconds"]),
                "manual": False,
            }
            if moment <= self._now - _HOUR:  # sizes are calculated within the hour
                if index == 0:
                    snapshot["full_size"] = size
                else:
                    share = 1 + int(hashlib.blake2b(snapshot_id.encode(), digest_size=2).hexdigest(), 16) % 5
                    snapshot["diff_size"] = size * share // 100
            found.append(snapshot)
        return found


def _on_schedule(item: dict, day: int) -> bool:
    d = datetime.fromtimestamp(day, UTC)
    if item["frequency"] == "weekly":
        return d.isoweekday() == item["day"]
    if item["frequency"] == "monthly":
        return d.day == min(item["day"], calendar.monthrange(d.year, d.month)[1])
    return True


def _snapshot_id(branch_id: str, what: str) -> str:
    return "snap-" + hashlib.blake2b(f"{branch_id}:{what}".encode(), digest_size=10).hexdigest()


def _lsn(moment: int) -> str:
    return f"0/{moment % 0xFFFFFFFF:X}"


def _size(branch: dict) -> int:
    """A branch's logical size in bytes; 0 when a test made it something else (a hostile value)."""
    size = branch.get("logical_size")
    return size if isinstance(size, int) else 0
