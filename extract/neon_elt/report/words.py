"""How the report words and formats what the marts hold: names, labels, amounts, dollars, dates."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..views import NO_NAME, shorten

# Bar labels are never cut by the chart (Vega ends a label past its limit with "…", and two long
# names then read alike); a name longer than this loses its middle instead, keeping both ends.
LABEL_CHARS = 60


def named(name: str | None) -> str:
    """A name as shown: Neon may serve an entity without one."""
    return NO_NAME if name is None else name


def label(name: str | None, limit: int = LABEL_CHARS) -> str:
    return shorten(named(name), limit)


def distinct_labels(names: list[str | None], ids: list[str]) -> list[str]:
    """One label per row: a name shared by two rows (Neon does not make project names unique), or
    shortened alike, carries its row's id."""
    short = [label(name) for name in names]
    counts = Counter(short)
    return [
        text if counts[text] == 1 else f"{label(name, LABEL_CHARS - len(id_) - 3)} ({id_})"
        for text, name, id_ in zip(short, names, ids, strict=True)
    ]


def window_words(start: Any, end: Any) -> str:
    """The cost window in words: "Oct 31 to Nov 29"."""
    return f"{start:%b} {start.day} to {end:%b} {end.day}"


def hours(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def amount(value: float | None) -> str:
    """A quantity: two decimals from 1 up, three significant digits below (0.0312 GB-months)."""
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def usd(value: float | None, signed: bool = False) -> str:
    """Dollars and cents; a cost too small for a cent still shows that it is not nothing."""
    if value is None:
        return "no rate"
    sign = (
        ("+" if value > 0 else "\u2212" if value < 0 else "") if signed else ("\u2212" if value < 0 else "")
    )
    if 0 < abs(value) < 0.005:
        return f"{sign}<$0.01"
    return f"{sign}${abs(value):,.2f}"


def rate_words(rate: float | None, unit: str | None) -> str:
    return "no rate" if rate is None else f"${rate:g} / {unit}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def period_words(start: Any) -> str:
    """A billing period by its start: "November 2026" (Neon's periods start on the 1st)."""
    return f"{start:%B %Y}" if start.day == 1 else f"the period from {start:%b} {start.day}, {start.year}"


def until_words(moment: Any) -> str:
    """Where the warehouse's figures of a period stop: "Dec 5, 00:00 UTC"."""
    return f"{moment:%b} {moment.day}, {moment:%H:%M} UTC"


def plan_words(plan: str | None) -> str:
    return f"{plan.capitalize()} plan" if plan else "unknown plan"


def suspend_words(seconds: int | None) -> str:
    """A compute's suspend timeout as people say it."""
    if seconds is None:
        return "–"
    if seconds < 0:
        return "never"
    if seconds == 0:
        return "after 5 min (default)"
    if seconds % 3600 == 0:
        return f"after {seconds // 3600} h"
    if seconds % 60 == 0:
        return f"after {seconds // 60} min"
    return f"after {seconds} s"


def priced(priced_cost: float, unpriced_parts: int, parts: int) -> str:
    """A mart's total of `parts` (an org_bills period's lines, a project_costs row's kinds), of
    which `unpriced_parts` have no rate: its priced part, the mart's, and a word for the rest
    (never a guess at it)."""
    if unpriced_parts == 0:
        return usd(priced_cost)
    return f"{usd(priced_cost)} + unpriced" if unpriced_parts < parts else "no rate"


# project_costs' cost of each kind -> its name in the report, in the order the bars stack.
COST_KINDS = {
    "compute_cost_usd": "Compute",
    "storage_cost_usd": "Storage",
    "transfer_cost_usd": "Transfer",
    "extra_branches_cost_usd": "Extra branches",
}


# included_per of monthly_bill -> how the allowance is counted, in words.
INCLUDED_PER = {
    "organization-month": "a month for the organization",
    "project-hour": "per project at any hour",
}


def days_words(days: int) -> str:
    return f"{days} day{'' if days == 1 else 's'}"


def findings(thresholds: dict) -> dict[str, tuple[str, str]]:
    """A flag of compute_hygiene -> the finding's name in the report, and what it means, with the
    thresholds the build applied (marts.estate's)."""
    size = thresholds["min_compute_size_cu"]
    stale = days_words(thresholds["stale_after_days"])
    idle = days_words(thresholds["idle_replica_after_days"])
    return {
        "never_suspends": (
            "never suspends",
            "its suspend timeout is -1: it never scales to zero, and bills at least its minimum size for "
            "as long as it runs",
        ),
        "has_oversized_minimum": (
            f"minimum above {size:g} CU",
            "while it runs it never scales below its minimum size; 0.25 CU is the smallest",
        ),
        "is_active_on_stale_branch": (
            "runs on a stale branch",
            f"it was running when last read, on a stale branch: one nobody used for {stale} or more "
            "(see the clean-up list)",
        ),
        "is_idle_read_replica": (
            "idle read replica",
            f"a read replica nobody used for {idle} or more (the dbt var idle_replica_after_days): "
            "likely forgotten",
        ),
    }
