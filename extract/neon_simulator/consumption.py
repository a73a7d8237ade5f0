"""Consumption history: what ``GET /consumption_history/v2/projects`` serves, computed on demand.

It is never stored: a day's usage per metric is a pure function of the seed, the project id and the
day, so it costs no memory and never changes for past hours.
"""

from __future__ import annotations

import hashlib
import uuid

from .records import _Project
from .reference import CONSUMPTION_METRICS
from .timestamps import _DAY, _HOUR, month_start, next_month_start, parse_ts, ts


class ConsumptionHistory:
    """The consumption maths of :class:`~neon_simulator.account.Account`, mixed into it: reads the
    account's ``_now``, ``spec.seed``, ``_plan_orgs``, ``_org_by_id`` and ``_consumption_since``."""

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
        org = self._org_by_id[project.scope]
        indexes = [CONSUMPTION_METRICS.index(m) for m in metrics]
        periods: dict[int, dict] = {}
        for frame_start, frame_end, values in self._consumption_frames(project, granularity, start, end):
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
