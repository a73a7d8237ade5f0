"""A row of the benchmark report (BENCHMARKS.md) and how its numbers are written."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Row:
    benchmark: str
    ours: str
    baseline: str
    ratio: str
    target: str
    verdict: str
    detail: str


def fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s"
