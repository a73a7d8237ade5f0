"""Time as Neon's API writes it: RFC 3339 strings in UTC to the second, and the month boundaries
of billing periods. The simulator keeps every moment as epoch seconds and formats it here.
"""

from __future__ import annotations

import calendar
import functools
import os
from datetime import UTC, datetime, timedelta

_HOUR = 3600
_DAY = 86400
_UNIX_EPOCH = datetime(1970, 1, 1)  # naive on purpose: isoformat() then has no offset


@functools.lru_cache(maxsize=1 << 16)  # the same hours, formatted for every project and branch
def ts(epoch: int) -> str:
    """Format epoch seconds as the API does: RFC 3339, UTC, second precision (``...T12:00:00Z``)."""
    return (_UNIX_EPOCH + timedelta(seconds=epoch)).isoformat() + "Z"


def parse_ts(value: str) -> int:
    """Parse an RFC 3339 timestamp (``Z`` or an offset; a naive one is taken as UTC) to epoch seconds."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def default_clock() -> datetime:
    """The clock of an account whose spec sets none: ``NEON_SIM_NOW`` (RFC 3339) where it is set, so
    that every process of a test run generates the same account; else now, to the hour."""
    text = os.environ.get("NEON_SIM_NOW")
    if not text:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        return datetime.fromtimestamp(parse_ts(text), UTC)
    except ValueError:
        raise ValueError(f"NEON_SIM_NOW: not an RFC 3339 timestamp: {text!r}") from None


def month_start(epoch: int) -> int:
    """Epoch seconds of 00:00 UTC on the first day of ``epoch``'s month."""
    d = datetime.fromtimestamp(epoch, UTC)
    return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp())


def next_month_start(epoch: int) -> int:
    """Epoch seconds of 00:00 UTC on the first day of the month after ``epoch``'s month."""
    d = datetime.fromtimestamp(epoch, UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    return month_start(epoch) + days * _DAY
