"""Live progress on a terminal and the end-of-run summary."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from neon_api_source import listings
from neon_api_source.helpers import RunStats


class Progress:
    """Redraws one status line per resource on stderr while the extract runs (TTY only)."""

    def __init__(
        self, stats: RunStats, stream: TextIO = sys.stderr, interval: float = 0.5, enabled: bool = True
    ):
        self.stats = stats
        self.stream = stream
        self.interval = interval
        self.enabled = enabled and stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._lines = 0

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self._draw()
            self.stream.write("\n")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw()

    def _draw(self) -> None:
        elapsed = max(self.stats.elapsed, 1e-6)
        lines = [
            f"extract {elapsed:6.1f}s  requests {self.stats.total_requests:>7,} "
            f"({self.stats.total_requests / elapsed:5.1f}/s)  retries {self.stats.retries}  "
            f"429s {self.stats.throttled}  skipped 404s {self.stats.skipped_404}"
        ]
        for route, count in sorted(self.stats.requests.items(), key=lambda kv: kv[0]):
            label = listings.ROUTE_LABELS.get(route, route)
            lines.append(f"  {label:<12} {count:>7,} requests  {count / elapsed:6.1f}/s")
        rows = "  ".join(f"{table} {n:,}" for table, n in sorted(self.stats.rows.items()))
        lines.append(f"  rows: {rows}")
        text = ""
        if self._lines:
            text += f"\x1b[{self._lines}F"  # back to the first line of the previous frame
        text += "".join(f"\x1b[2K{line}\n" for line in lines)
        self._lines = len(lines)
        self.stream.write(text.rstrip("\n"))
        self.stream.write("\n")
        self.stream.flush()


def rate_limit(stats: RunStats) -> str:
    """What the rate limit did to the run: the rate it ended at against the ceiling, the 429s
    met, and how long they held requests back on purpose (pauses, Retry-After, backoff)."""
    if stats.rate_ceiling is None:
        return f"rate limit: off (client-side limiter disabled), {stats.throttled} x 429"
    if not stats.throttled:
        return f"rate limit: {stats.rate_ceiling:,.0f}/min throughout, no 429s"
    share = stats.throttled / max(1, stats.total_requests)
    return (
        f"rate limit: settled at {stats.rate:,.0f}/min (ceiling {stats.rate_ceiling:,.0f}/min), "
        f"{stats.throttled} x 429 ({share:.1%} of requests), paused {stats.throttle_pause:.1f} s for them"
    )


def summary(stats: RunStats, load_id: str | None, table_rows: dict[str, int]) -> str:
    """The end-of-run report: rows per table, requests, retries, 429s, skips, time, load id, and
    what the rate limit did."""
    lines = ["", "Extract summary"]
    width = max((len(t) for t in table_rows), default=10)
    for table, n in sorted(table_rows.items()):
        lines.append(f"  {table:<{width}}  {n:>9,} {'row' if n == 1 else 'rows'}")
    lines.append(
        f"  requests {stats.total_requests:,}, retries {stats.retries}, 429s {stats.throttled}, "
        f"skipped 404s {stats.skipped_404}, elapsed {stats.elapsed:.1f} s, load id {load_id or '-'}"
    )
    lines.append(f"  {rate_limit(stats)}")
    for note in stats.notes:
        lines.append(f"  note: {note}")
    for skipped in stats.skipped_optional:
        lines.append(f"  skipped: {skipped}")
    return "\n".join(lines)
