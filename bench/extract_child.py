"""Child process of the memory benchmark: `neon-elt extract`, as the command runs it, then the
process's own peak RSS on stdout.

Usage: python -m bench.extract_child BASE_URL WAREHOUSE   (the key in NEON_BENCH_KEY)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import sys
import time

from neon_elt.cli import console


def peak_rss_mb() -> float:
    """This process's peak RSS since it started this program. Linux's `ru_maxrss` is not that: it
    keeps the peak of the process forked from the bench, which by the memory row holds what the
    earlier rows left (434 MB read for a 393 MB extract). VmHWM belongs to the program's own
    address space."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes, elsewhere too


def main() -> None:
    base_url, warehouse = sys.argv[1], sys.argv[2]
    os.environ.update(
        NEON_API_BASE_URL=base_url, NEON_API_KEY=os.environ["NEON_BENCH_KEY"], NEON_DUCKDB_PATH=warehouse
    )
    output = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(output):
        # the simulator runs without limits here, so the client does too
        code = console(["extract", "--requests-per-minute", "0"])
    seconds = time.perf_counter() - started
    if code != 0:
        sys.exit(f"neon-elt extract failed (exit {code}):\n{output.getvalue()}")
    peak_mb = peak_rss_mb()
    summary = output.getvalue()
    requests = re.search(r"requests ([\d,]+)", summary).group(1).replace(",", "")
    branches = re.search(r"project_branches\s+([\d,]+) rows?", summary).group(1).replace(",", "")
    print(f"{peak_mb:.1f} {seconds:.1f} {requests} {branches}")


if __name__ == "__main__":
    main()
