"""Consumption history: what ``GET /consumption_history/v2/projects`` and
``GET /consumption_history/v2/branches`` serve, computed on demand from the estate the simulator
serves, in the raw units of Neon's "Usage and cost calculations" page (storage in byte-hours,
extra branches in branch-hours; the warehouse converts them and applies the plan's allowances).

Nothing is stored but what the estate needs anyway: when each compute was active and at what size
(:class:`~neon_simulator.records._Compute`), and each branch's logical size since it changed
(``_Project.sizes``). Per branch and hour:

- ``compute_unit_seconds``: the seconds each of its computes was active times its size then, a
  whole number of quarter CUs between ``autoscaling_limit_min_cu`` and ``..._max_cu`` (fixed when
  they are equal). A compute is active before its last start on some days only (how many and how
  long follow the project's activity), then only in its sessions, the last of which ends at its
  ``last_active``: none before it was created, after its ``last_active``, or while it is suspended.
- ``root_branch_bytes_month``: a root branch's logical size, per hour it is alive (byte-hours).
- ``child_branch_bytes_month``: a child branch's own data, the pages it changed since it branched,
  taken as :data:`CHILD_OWN_PERCENT` of its logical size, per hour alive.
- ``instant_restore_bytes_month``: the WAL its read-write computes wrote
  (:data:`WRITTEN_BYTES_PER_CU_SECOND`) within the project's ``history_retention_seconds`` (in whole
  days) before the day began, per hour alive: what an instant restore can go back through.
- ``public_network_transfer_bytes``, ``private_network_transfer_bytes``: bytes sent while a compute
  was active (:data:`TRANSFER_BYTES_PER_CU_SECOND`), privately for a project restricted to VPC
  endpoints on a plan with private networking (:data:`PRIVATE_TRANSFER_PERCENT` of them).
- per project only, ``extra_branches_month``: the child branches alive in the hour (branch-hours;
  the plan's allowance is the warehouse's to apply), and ``snapshot_storage_bytes_month``:
  :data:`SNAPSHOT_PERCENT` of the default branch's size per hour, when that branch is protected.

A branch is alive in an hour when it existed during any of it; deleted branches and computes keep
their history. Every value of a timeframe is a difference of one cumulative count, so hours add up
to days, days to months, and a project's branches to the project, exactly. The project's per-period
counters (``compute_time_seconds``, ``active_time_seconds``, ``written_data_bytes``,
``data_transfer_bytes``, ``data_storage_bytes_hour``) are the same sums since the billing period began.
"""

from __future__ import annotations

import hashlib
import uuid

from .records import _Compute, _Project
from .reference import CONSUMPTION_METRICS, PRIVATE_NETWORKING_PLANS
from .timestamps import _DAY, _HOUR, month_start, next_month_start, parse_ts, ts

#: Bytes of WAL a read-write compute writes per CU-second it is active (read-only replicas: none).
WRITTEN_BYTES_PER_CU_SECOND = 2_000
#: Bytes a compute sends to its clients per CU-second it is active.
TRANSFER_BYTES_PER_CU_SECOND = 12_000
#: The share (%) of that transfer that goes through private networking, in a project restricted
#: to VPC endpoints; the rest, and all of any other project's, is public.
PRIVATE_TRANSFER_PERCENT = 80
#: A child branch's own data (%) of its logical size: the pages it changed since it branched. The
#: rest it shares with its parent, which is billed for it.
CHILD_OWN_PERCENT = 10
#: Snapshots of a protected default branch store this share (%) of its logical size.
SNAPSHOT_PERCENT = 5
#: How long a compute of a project with activity 1.0 is active at most on a day before its last
#: start; the shortest active spell is five minutes, Neon's default suspend timeout.
BUSIEST_DAY_SECONDS = 16 * _HOUR
_SHORTEST_SPELL = 300

_CU, _ROOT, _CHILD, _RESTORE, _PUBLIC, _PRIVATE, _EXTRA, _SNAPSHOT = (
    CONSUMPTION_METRICS.index(metric)
    for metric in (
        "compute_unit_seconds",
        "root_branch_bytes_month",
        "child_branch_bytes_month",
        "instant_restore_bytes_month",
        "public_network_transfer_bytes",
        "private_network_transfer_bytes",
        "extra_branches_month",
        "snapshot_storage_bytes_month",
    )
)
_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finaliser: 64 well-mixed bits of ``x``, cheaper than a hash for a draw a day."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class ConsumptionHistory:
    """The consumption maths of :class:`~neon_simulator.account.Account`, mixed into it: reads the
    account's ``_now``, ``spec.seed``, ``_plan_orgs``, ``_org_by_id``, ``_project_vpc``,
    ``_consumption_since`` and ``_branch_consumption_since``."""

    # ------------------------------------------------------------------ what usage is made of

    def _track_compute(self, project: _Project, endpoint: dict) -> _Compute:
        """Record a new compute's activity from its ``Endpoint``: active on some days before its last
        start (``started_at``), then from that start to its ``last_active``; a compute that never
        started (archived ones) only before its ``last_active``, one never active not at all."""
        created = parse_ts(endpoint["created_at"])
        digest = hashlib.blake2b(f"{self.spec.seed}:{endpoint['id']}".encode(), digest_size=8).digest()
        compute = _Compute(
            endpoint["branch_id"],
            created,
            round(endpoint["autoscaling_limit_min_cu"] * 4),
            round(endpoint["autoscaling_limit_max_cu"] * 4),
            int.from_bytes(digest, "big"),
            endpoint["type"] == "read_write",
        )
        started, last = endpoint.get("started_at"), endpoint.get("last_active")
        if started is not None and last is not None:
            compute.quiet_from = parse_ts(started)
            compute.sessions.append([compute.quiet_from, parse_ts(last)])
        elif last is not None:
            compute.quiet_from = parse_ts(last)
        project.computes[endpoint["id"]] = compute
        return compute

    @staticmethod
    def _log_size(project: _Project, branch: dict, since: int) -> None:
        """The branch's logical size holds from ``since`` (a later entry in the same hour wins)."""
        project.sizes.setdefault(branch["id"], []).append((since, branch.get("logical_size", 0)))

    @staticmethod
    def _blocks(project: _Project, compute: _Compute, lo: int, hi: int):
        """``(start, end, size x 4)`` of the compute's spells of activity that overlap ``[lo, hi)``.
        A spell's bounds never depend on ``lo`` and ``hi``, so any split of time adds up."""
        quiet = min(compute.quiet_from, hi)
        first = max(compute.created, lo)
        span = compute.high4 - compute.low4 + 1
        if first < quiet:
            busy = project.activity
            on = int(65536 * (0.2 + 0.7 * busy))  # the share of days with activity, in 1/65536
            longest = int((BUSIEST_DAY_SECONDS - _SHORTEST_SPELL) * busy)
            for day in range(first // _DAY, (quiet - 1) // _DAY + 1):
                x = _mix(compute.key + day)
                if (x & 0xFFFF) >= on:
                    continue
                length = _SHORTEST_SPELL + ((((x >> 16) & 0xFFFF) * longest) >> 16)
                begin = day * _DAY + ((((x >> 32) & 0xFFFF) * (_DAY - length)) >> 16)
                start, end = max(begin, compute.created), min(begin + length, compute.quiet_from)
                if start < end and start < hi and end > lo:
                    yield start, end, compute.low4 + (x >> 48) % span
        for start, end in compute.sessions:
            if start < end and start < hi and end > lo:
                yield start, end, compute.low4 + _mix(compute.key ^ start) % span

    def _private_rate(self, project: _Project) -> int:
        """Bytes per CU-second of activity sent privately; the rest of
        :data:`TRANSFER_BYTES_PER_CU_SECOND` is public. Private networking is a Scale feature: a
        project restricted to VPC endpoints in an organization on another plan sends nothing
        privately."""
        org = self._org_by_id.get(project.scope)
        if project.item["id"] in self._project_vpc and org and org["plan"] in PRIVATE_NETWORKING_PLANS:
            return TRANSFER_BYTES_PER_CU_SECOND * PRIVATE_TRANSFER_PERCENT // 100
        return 0

    @staticmethod
    def _branch_lives(project: _Project) -> list[tuple[str, int, int | None, int]]:
        """(id, created, deleted or None, depth below its root) of every branch the project has had."""
        lives = [(bid, created, None, depth) for bid, (depth, created) in project.meta.items()]
        lives += [
            (bid, created, deleted, depth) for bid, (created, deleted, depth, _) in project.retired.items()
        ]
        return sorted(lives)

    # ------------------------------------------------------------------------- the maths

    def _series(
        self, project: _Project, lo: int, hi: int, step: int, *, computes: bool = True
    ) -> dict[str, list[list[int]]]:
        """Branch id -> the :data:`CONSUMPTION_METRICS` per timeframe of ``step`` seconds (whole
        hours), counting only ``[lo, hi)`` (whole hours); timeframe ``i`` is ``lo // step + i``.
        Branches not alive within ``[lo, hi)`` are left out; without ``computes``, storage alone."""
        base, first_hour, end_hour = lo // step, lo // _HOUR, hi // _HOUR
        count, hours = -(-hi // step) - base, step // _HOUR
        retention_days = -(-project.detail.get("history_retention_seconds", 0) // _DAY)
        written_from = (lo // _DAY - retention_days) * _DAY  # writes before lo feed instant restore
        private_rate = self._private_rate(project)
        by_branch: dict[str, list[_Compute]] = {}
        for compute in project.computes.values() if computes else ():
            by_branch.setdefault(compute.branch_id, []).append(compute)
        default = next((b for b in project.branches.values() if b["default"]), None)
        snapshotted = default["id"] if default is not None and default["protected"] else None

        def spread(values: list[list[int]], metric: int, h0: int, h1: int, amount: int) -> None:
            """Add ``amount`` per hour of ``[h0, h1)`` within ``[lo, hi)`` to its timeframes."""
            h0, h1 = max(h0, first_hour), min(h1, end_hour)
            if h0 >= h1 or not amount:
                return
            for i in range(h0 // hours - base, (h1 - 1) // hours - base + 1):
                frame_h0 = (base + i) * hours
                values[i][metric] += amount * (min(h1, frame_h0 + hours) - max(h0, frame_h0))

        series: dict[str, list[list[int]]] = {}
        for bid, created, deleted, depth in self._branch_lives(project):
            if created >= hi or (deleted is not None and deleted <= lo):
                continue
            values = [[0] * len(CONSUMPTION_METRICS) for _ in range(count)]
            born, gone = created // _HOUR, end_hour if deleted is None else -(-deleted // _HOUR)
            sizes = project.sizes.get(bid, [])
            for n, (since, size) in enumerate(sizes):
                until = sizes[n + 1][0] // _HOUR if n + 1 < len(sizes) else gone
                h0, h1 = max(since // _HOUR, born), min(until, gone)
                if depth == 0:
                    spread(values, _ROOT, h0, h1, size)
                    if bid == snapshotted:
                        spread(values, _SNAPSHOT, h0, h1, size * SNAPSHOT_PERCENT // 100)
                else:
                    spread(values, _CHILD, h0, h1, size * CHILD_OWN_PERCENT // 100)
            if depth:
                spread(values, _EXTRA, born, gone, 1)
            written = [0] * (-(-hi // _DAY) - written_from // _DAY)
            for compute in by_branch.get(bid, ()):
                for start, end, size4 in self._blocks(project, compute, written_from, hi):
                    if compute.writes:  # per day, for instant restore: its whole CU-seconds' WAL
                        a = max(start, written_from)
                        while a < min(end, hi):
                            b = min(end, hi, (a // _DAY + 1) * _DAY)
                            cu = (b - start) * size4 // 4 - (a - start) * size4 // 4
                            written[a // _DAY - written_from // _DAY] += cu * WRITTEN_BYTES_PER_CU_SECOND
                            a = b
                    a = max(start, lo)
                    while a < min(end, hi):
                        b = min(end, hi, (a // step + 1) * step)
                        frame = values[a // step - base]
                        frame[_CU] += (b - start) * size4 // 4 - (a - start) * size4 // 4
                        sent = (b - start) * size4 * TRANSFER_BYTES_PER_CU_SECOND // 4 - (
                            a - start
                        ) * size4 * TRANSFER_BYTES_PER_CU_SECOND // 4
                        private = (b - start) * size4 * private_rate // 4 - (
                            a - start
                        ) * size4 * private_rate // 4
                        frame[_PUBLIC] += sent - private
                        frame[_PRIVATE] += private
                        a = b
            if retention_days:
                window = sum(written[:retention_days])
                for n, day in enumerate(range(lo // _DAY, -(-hi // _DAY))):
                    spread(values, _RESTORE, max(day * 24, born), min(day * 24 + 24, gone), window)
                    window += written[n + retention_days] - written[n]
            series[bid] = values
        return series

    def _usage_since(self, project: _Project, lo: int, hi: int) -> dict[str, tuple[int, int, int, int]]:
        """Branch id -> (active seconds, CU-seconds, written bytes, transferred bytes) of its
        computes (deleted ones too) within ``[lo, hi)``: the per-period counters' sums."""
        usage: dict[str, tuple[int, int, int, int]] = {}
        for compute in project.computes.values():
            active = cu = written = sent = 0
            for start, end, size4 in self._blocks(project, compute, lo, hi):
                a, b = max(start, lo), min(end, hi)
                active += b - a
                cu += (b - start) * size4 // 4 - (a - start) * size4 // 4
                if compute.writes:
                    written += (
                        (b - start) * size4 // 4 - (a - start) * size4 // 4
                    ) * WRITTEN_BYTES_PER_CU_SECOND
                rate = size4 * TRANSFER_BYTES_PER_CU_SECOND
                sent += (b - start) * rate // 4 - (a - start) * rate // 4
            old = usage.get(compute.branch_id, (0, 0, 0, 0))
            usage[compute.branch_id] = (old[0] + active, old[1] + cu, old[2] + written, old[3] + sent)
        return usage

    def _storage_byte_hours(self, project: _Project, lo: int, hi: int) -> int:
        """Root and child storage byte-hours of the project within ``[lo, hi)`` (whole hours)."""
        if lo >= hi:
            return 0
        series = self._series(project, lo, hi, _DAY, computes=False)
        return sum(frame[_ROOT] + frame[_CHILD] for values in series.values() for frame in values)

    # ------------------------------------------------------------------------ timeframes

    def _frames(self, project: _Project, granularity: str, start: int, end: int, since: int):
        """``(timeframes, branch id -> values per timeframe, lo, hi)`` (``None`` if there are none) for the timeframes of ``granularity``
        that begin within ``[start, end)``, counting usage from ``since`` (or the project's
        creation) up to the account clock's hour (exclusive); a partial day or month counts the
        hours available, ``[lo, hi)``. Timeframes are ``(start, end)`` pairs; values follow
        :data:`CONSUMPTION_METRICS`."""
        if project.scope not in self._plan_orgs:
            return None
        first = max(since, parse_ts(project.item["created_at"])) // _HOUR * _HOUR
        last = self._now // _HOUR * _HOUR
        if granularity == "hourly":
            lo, hi, step = max(first, start // _HOUR * _HOUR), min(last, -(-end // _HOUR) * _HOUR), _HOUR
        elif granularity == "daily":
            lo, hi, step = max(first, start // _DAY * _DAY), min(last, -(-end // _DAY) * _DAY), _DAY
        else:  # monthly: the months that begin within [start, end), summed from days
            months_from = start if month_start(start) == start else next_month_start(start)
            months_to = end if month_start(end) == end else next_month_start(end)
            lo, hi, step = max(first, months_from), min(last, months_to), _DAY
        if lo >= hi:
            return None
        series = self._series(project, lo, hi, step)
        frames = [(day * step, (day + 1) * step) for day in range(lo // step, -(-hi // step))]
        if granularity == "monthly":
            months: dict[int, list[int]] = {}
            for n, (day_start, _) in enumerate(frames):
                months.setdefault(month_start(day_start), []).append(n)
            frames = [(month, next_month_start(month)) for month in months]
            series = {
                bid: [
                    [sum(values[n][m] for n in days) for m in range(len(CONSUMPTION_METRICS))]
                    for days in months.values()
                ]
                for bid, values in series.items()
            }
        return frames, series, lo, hi

    def _project_frames(self, project: _Project, granularity: str, start: int, end: int):
        """``(start, end, values)`` of the project: its branches' sums, every timeframe in range."""
        found = self._frames(project, granularity, start, end, self._consumption_since)
        if found is None:
            return []
        frames, series, _, _ = found
        totals = [[0] * len(CONSUMPTION_METRICS) for _ in frames]
        for values in series.values():
            for total, value in zip(totals, values, strict=True):
                for m, v in enumerate(value):
                    total[m] += v
        return [(s, e, tuple(t)) for (s, e), t in zip(frames, totals, strict=True)]

    def _branch_frames(self, project: _Project, granularity: str, start: int, end: int):
        """Branch id -> ``(start, end, values)`` of the :data:`BRANCH_CONSUMPTION_METRICS` for the
        timeframes in range since branch-level history began, when the branch was alive in them."""
        found = self._frames(project, granularity, start, end, self._branch_consumption_since)
        if found is None:
            return {}
        frames, series, lo, hi = found
        lives = {bid: (created, deleted) for bid, created, deleted, _ in self._branch_lives(project)}
        width = len(CONSUMPTION_METRICS) - 2  # the first six
        result: dict[str, list] = {}
        for bid, values in series.items():
            created, deleted = lives[bid]
            kept = [
                (s, e, tuple(v[:width]))
                for (s, e), v in zip(frames, values, strict=True)
                if created < min(e, hi) and (deleted is None or deleted > max(s, lo))
            ]
            if kept:
                result[bid] = kept
        return result

    # ------------------------------------------------------------------------ API shapes

    def _consumption_periods(
        self, project: _Project, granularity: str, start: int, end: int, metrics
    ) -> list[dict]:
        """``ConsumptionHistoryPerPeriodV2`` records: timeframes grouped by billing month."""
        return self._periods(project, self._project_frames(project, granularity, start, end), metrics)

    def _branch_consumption_periods(
        self, project: _Project, granularity: str, start: int, end: int, metrics
    ) -> dict[str, list[dict]]:
        """Branch id -> its ``ConsumptionHistoryPerPeriodV2`` records, for every branch that has a
        timeframe within ``[start, end)``."""
        return {
            bid: self._periods(project, frames, metrics)
            for bid, frames in self._branch_frames(project, granularity, start, end).items()
        }

    def _periods(self, project: _Project, frames, metrics) -> list[dict]:
        """``ConsumptionHistoryPerPeriodV2`` records of ``(start, end, values)`` frames (values in
        the order of :data:`CONSUMPTION_METRICS`, or its first six), keeping ``metrics``. A period
        is the organization's billing month and carries its plan."""
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
