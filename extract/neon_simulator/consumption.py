"""Consumption history: what ``GET /consumption_history/v2/projects`` and
``GET /consumption_history/v2/branches`` serve, computed on demand.

It is never stored: a day's usage per metric is a pure function of the seed, the project id and the
day, so it costs no memory and never changes for past hours. A project's usage is split between the
branches alive in each timeframe (deleted ones included: their history outlives them), so that the
branches of a project always add up to the project, per timeframe and metric.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict

from .records import _Project
from .reference import BRANCH_CONSUMPTION_METRICS, CONSUMPTION_METRICS
from .timestamps import _DAY, _HOUR, month_start, next_month_start, parse_ts, ts


class ConsumptionHistory:
    """The consumption maths of :class:`~neon_simulator.account.Account`, mixed into it: reads the
    account's ``_now``, ``spec.seed``, ``_plan_orgs``, ``_org_by_id``, ``_consumption_since`` and
    ``_branch_consumption_since``."""

    def _consumption_frames(self, project: _Project, granularity: str, start: int, end: int):
        """``(start, end, values)`` timeframes of ``granularity`` that begin within ``[start, end)``.

        Usage exists for the hours from the later of the plan start and the project's creation hour
        up to the account clock's hour (exclusive). A day's usage is split evenly over its hours, so
        hourly, daily and monthly views always add up to each other.
        """
        if project.scope not in self._plan_orgs:
            return
        first_hour = max(self._consumption_since, parse_ts(project.item["created_at"])) // _HOUR
        last_hour = self._now // _HOUR  # exclusive
        if granularity == "hourly":
            for hour in range(max(first_hour, start // _HOUR), min(last_hour, -(-end // _HOUR))):
                day_values = self._daily_values(project, hour // 24)
                index = hour % 24
                values = tuple(v // 24 + (index < v % 24) for v in day_values)
                yield hour * _HOUR, (hour + 1) * _HOUR, values
            return
        days = range(max(first_hour // 24, start // _DAY), min((last_hour - 1) // 24 + 1, -(-end // _DAY)))
        if granularity == "daily":
            for day in days:
                values = self._day_total(project, day, first_hour, last_hour)
                if values is not None:
                    yield day * _DAY, (day + 1) * _DAY, values
            return
        month_totals: dict[int, list[int]] = {}
        for day in range(first_hour // 24, (last_hour - 1) // 24 + 1):
            values = self._day_total(project, day, first_hour, last_hour)
            if values is None:
                continue
            month = month_start(day * _DAY)
            if not start <= month < end:
                continue
            totals = month_totals.setdefault(month, [0] * len(CONSUMPTION_METRICS))
            for i, v in enumerate(values):
                totals[i] += v
        for month, totals in month_totals.items():
            yield month, next_month_start(month), tuple(totals)

    def _day_total(
        self, project: _Project, day: int, first_hour: int, last_hour: int
    ) -> tuple[int, ...] | None:
        """Usage of ``day`` restricted to the available hours (``None`` if none are available)."""
        lo, hi = max(day * 24, first_hour) - day * 24, min(day * 24 + 24, last_hour) - day * 24
        if lo >= hi:
            return None
        values = self._daily_values(project, day)
        if lo == 0 and hi == 24:
            return values
        return tuple((hi - lo) * (v // 24) + max(0, min(hi, v % 24) - lo) for v in values)

    def _daily_values(self, project: _Project, day: int) -> tuple[int, ...]:
        """A full day's usage per metric: a pure function of the seed, the project and the day."""
        digest = hashlib.blake2b(
            f"{self.spec.seed}:{project.item['id']}:{day}".encode(), digest_size=32
        ).digest()
        u = [int.from_bytes(digest[i : i + 4], "big") / 4294967296 for i in range(0, 32, 4)]
        activity, cu, root_mb, child_mb = project.profile
        active = 0.0 if u[0] < 0.25 * (1 - activity) else u[1] * activity
        mb = 1024 * 1024
        return (
            int(86400 * active * cu),  # compute_unit_seconds
            int(root_mb * mb * (0.97 + 0.06 * u[2]) / 30),  # root_branch_bytes_month (one day of it)
            int(child_mb * mb * u[3] / 30),  # child_branch_bytes_month
            int(root_mb * mb * 0.2 * u[4] / 30),  # instant_restore_bytes_month
            int(active * 5e8 * u[5]),  # public_network_transfer_bytes
            int(active * 1e8 * u[6]) if u[6] > 0.9 else 0,  # private_network_transfer_bytes
            int(u[7] * 4) if child_mb > 15000 else 0,  # extra_branches_month
            int(root_mb * mb * 0.05 / 30) if u[2] > 0.8 else 0,  # snapshot_storage_bytes_month
        )

    def _consumption_periods(
        self, project: _Project, granularity: str, start: int, end: int, metrics
    ) -> list[dict]:
        """``ConsumptionHistoryPerPeriodV2`` records: timeframes grouped by billing month."""
        frames = self._consumption_frames(project, granularity, start, end)
        return self._periods(project, frames, metrics)

    def _periods(self, project: _Project, frames, metrics) -> list[dict]:
        """``ConsumptionHistoryPerPeriodV2`` records of ``(start, end, values)`` frames (values in
        the order of :data:`CONSUMPTION_METRICS`, or its first six), keeping ``metrics``."""
        org = self._org_by_id[project.scope]
        indexes = [CONSUMPTION_METRICS.index(m) for m in metrics]
        periods: dict[int, dict] = {}
        for frame_start, frame_end, values in frames:
            period_start = month_start(frame_start)
            period = periods.get(period_start)
            if period is None:
                digest = hashlib.blake2b(
                    f"{self.spec.seed}:{org['id']}:{period_start}".encode(), digest_size=16
                ).digest()
                period = {
                    "period_id": str(uuid.UUID(bytes=digest, version=4)),
                    "period_plan": org["plan"],
                    "period_start": ts(period_start),
                }
                if next_month_start(period_start) <= self._now:
                    period["period_end"] = ts(next_month_start(period_start))
                period["consumption"] = []
                periods[period_start] = period
            period["consumption"].append(
                {
                    "timeframe_start": ts(frame_start),
                    "timeframe_end": ts(frame_end),
                    "metrics": [{"metric_name": CONSUMPTION_METRICS[i], "value": values[i]} for i in indexes],
                }
            )
        return list(periods.values())

    # ----------------------------------------------------------------------------- per branch

    def _branch_consumption_periods(
        self, project: _Project, granularity: str, start: int, end: int, metrics
    ) -> dict[str, list[dict]]:
        """Branch id -> its ``ConsumptionHistoryPerPeriodV2`` records, for every branch that has a
        timeframe within ``[start, end)``."""
        return {
            bid: self._periods(project, frames, metrics)
            for bid, frames in self._branch_frames(project, granularity, start, end).items()
        }

    def _branch_frames(self, project: _Project, granularity: str, start: int, end: int):
        """Branch id -> ``(start, end, values)`` of the :data:`BRANCH_CONSUMPTION_METRICS`, for the
        timeframes of ``granularity`` that begin within ``[start, end)`` and after branch-level
        history began. A branch has a timeframe when it was alive during it. Months are sums of
        days, as for projects."""
        since = self._branch_consumption_since
        lives = self._branch_lives(project)
        frames: dict[str, list] = defaultdict(list)
        if granularity == "monthly":
            # every day since branch history began, summed per month that begins within the range
            months: dict[str, dict[int, list[int]]] = defaultdict(dict)
            for day_start, _day_end, values in self._consumption_frames(project, "daily", since, self._now):
                month = month_start(day_start)
                if not start <= month < end:
                    continue
                for bid, shares in self._split(project, lives, day_start, day_start + _DAY, values):
                    totals = months[bid].setdefault(month, [0] * len(shares))
                    for i, share in enumerate(shares):
                        totals[i] += share
            for bid, per_month in months.items():
                frames[bid] = [(m, next_month_start(m), tuple(t)) for m, t in sorted(per_month.items())]
            return dict(frames)
        for frame_start, frame_end, values in self._consumption_frames(
            project, granularity, max(start, since), end
        ):
            for bid, shares in self._split(project, lives, frame_start, frame_end, values):
                frames[bid].append((frame_start, frame_end, shares))
        return dict(frames)

    @staticmethod
    def _branch_lives(project: _Project) -> list[tuple[str, int, int | None, bool, bool]]:
        """(id, created, deleted or None, is a root, has a compute) of every branch the project has
        had, by id. Computes are created with their branch and go with it, so whether a branch
        has one never changes."""
        computes = {e["branch_id"] for e in project.endpoints}
        lives = [
            (bid, created, None, depth == 0, bid in computes)
            for bid, (depth, created) in project.meta.items()
        ]
        lives += [
            (bid, created, deleted, depth == 0, had)
            for bid, (created, deleted, depth, had) in project.retired.items()
        ]
        return sorted(lives)

    def _split(self, project: _Project, lives, frame_start: int, frame_end: int, values):
        """``(branch id, shares)`` for the branches alive in ``[frame_start, frame_end)``: each of
        the six branch metrics of the project's ``values`` split between the branches it belongs
        to, in whole units that add up to the project's value. Root storage goes to root branches,
        child storage to the others, compute and transfer to branches with a compute, instant
        restore storage to all; when no alive branch qualifies, to every alive branch."""
        alive = [life for life in lives if life[1] < frame_end and (life[2] is None or life[2] > frame_start)]
        if not alive:  # never: a project's first root branch is as old as the project
            return []
        day = frame_start // _DAY
        weights = {
            bid: 1
            + int.from_bytes(
                hashlib.blake2b(f"{self.spec.seed}:{bid}:{day}".encode(), digest_size=4).digest(), "big"
            )
            % 1000
            for bid, *_ in alive
        }
        eligible = (
            lambda life: life[4],  # compute_unit_seconds: branches with a compute
            lambda life: life[3],  # root_branch_bytes_month: roots
            lambda life: not life[3],  # child_branch_bytes_month: children
            lambda life: True,  # instant_restore_bytes_month: every branch
            lambda life: life[4],  # public_network_transfer_bytes
            lambda life: life[4],  # private_network_transfer_bytes
        )
        shares = {bid: [0] * len(BRANCH_CONSUMPTION_METRICS) for bid, *_ in alive}
        for index, belongs in enumerate(eligible):
            owners = [life[0] for life in alive if belongs(life)] or [life[0] for life in alive]
            total = sum(weights[bid] for bid in owners)
            parts = [values[index] * weights[bid] // total for bid in owners]
            for n in range(values[index] - sum(parts)):  # the remainder, a unit each in id order
                parts[n] += 1
            for bid, part in zip(owners, parts, strict=True):
                shares[bid][index] = part
        return [(bid, tuple(part)) for bid, part in shares.items()]
