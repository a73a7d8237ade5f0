"""`make bench`, row 6: tallies the pipeline runs of a test suite. On PYTHONPATH only while the
bench runs `make test` (bench/suite_time.py); without BENCH_TALLY_FILE it does nothing.

Each `dbt` and `neon-elt` process the suite starts writes, as it exits, one line to the file
BENCH_TALLY_FILE names: its command and its own CPU seconds (its children write their own)."""

import os
import sys

if os.environ.get("BENCH_TALLY_FILE"):
    import atexit

    from suite_tally import record_process

    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    if command in ("dbt", "neon-elt"):
        atexit.register(record_process, command, sys.argv[1:2])
