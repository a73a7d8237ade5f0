"""Child process of the memory benchmark: one extract, then its own peak RSS on stdout.

Usage: python -m bench.extract_child BASE_URL WAREHOUSE   (the key in NEON_BENCH_KEY)
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

from neon_api_source.helpers import NeonClient, RunStats, neon_rate_limiter
from neon_elt.run import elt


def main() -> None:
    base_url, warehouse = sys.argv[1], Path(sys.argv[2])
    client = NeonClient(base_url, os.environ["NEON_BENCH_KEY"], limiter=neon_rate_limiter(0), stats=RunStats())
    started = time.perf_counter()
    result = elt(warehouse, client, do_transform=False, show_progress=False)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    branches = result.table_rows.get("project_branches", 0)
    print(f"{peak_mb:.1f} {seconds:.1f} {result.stats.total_requests} {branches}")


if __name__ == "__main__":
    main()
