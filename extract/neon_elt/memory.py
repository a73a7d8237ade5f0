"""What the runner does to keep a large extract within its memory budget, and the measurement
behind each measure. Every process-wide switch the runner flips lives here, and nowhere else.

The budget: peak RSS of `neon-elt extract` below 400 MB on an account of 5,000 projects and
25,000 branches (`make bench`'s memory row: bench/extract_child.py runs the command in a child
process against the simulator, without latency or limits). Measured on 2 shared cores on
2026-11-30, each measure left out in turn (peak RSS; single runs vary by 10 MB or so). The first
four rows were measured before `large_blocks_go_back_to_the_os` existed, when the run peaked at
470 MB with every measure; the last against the run with every other measure, DuckDB's load
budget (duckdb_load_config) still 96 MB. With every measure and a 64 MB load budget: 372, 366 and
377 MB in three runs.

| measure                                   | with every measure | without this one |
|-------------------------------------------|--------------------|------------------|
| `keep_pandas_out`                         | 470 MB             | 513 MB (+43)     |
| `arrow_uses_the_system_allocator`         | 470 MB             | 485 MB (+15)     |
| `release_memory` (malloc_trim)            | 470 MB             | 496 MB (+26)     |
| `load_workers` (one at a time when large) | 470 MB             | 608 MB (+138)    |
| `large_blocks_go_back_to_the_os`          | 390 MB             | 460 MB (+70)     |

Where the rest goes, on that account: ~140 MB is the interpreter with dlt, DuckDB and Arrow
imported; the extract holds the estate's listings (~330 MB at its peak); the load is the peak,
what the process holds after the normalize (~255 MB) plus DuckDB's load budget and ~25 MB. The
branch consumption (1.7 million rows) is what the budget now has to fit: it leaves Arrow
buffers behind in the normalize, which the mmap threshold returns, and it is the largest table
DuckDB loads.

With every organization's consumption served (the `large-billed` preset: 60 days, 2.1 million
project and 5.7 million branch consumption rows; 2026-12-05), the run failed before consumption
replaced the re-read days (__init__.CONSUMPTION_MERGE): dlt's merge deduplicated the branch rows
with a ROW_NUMBER() over all of them and ran out of DuckDB's load budget (after 5.5 minutes, at
457 MB). It now completes, but over budget: 438 and 442 MB in two runs. Sampled by step: the
extract peaks at ~380 MB (a page of branch consumption, 1,000 branches x 60 days, decoded), the
normalize at ~370 MB, and the load climbs from the ~285 MB the process holds after the normalize
to the peak, far more than DuckDB's budget; 32 MB of budget instead of 64 still reached 400 MB,
and DuckDB's allocator_flush_threshold at 4 MB 430 MB: the rest of the load's growth was found
below.

Sampled by step and by load job on 2026-12-05 (RSS every 20 ms, a 446 MB run), then each of
DuckDB's statements alone on the same parquet files:

| measure (large-billed account)                      | before       | after        |
|-----------------------------------------------------|--------------|--------------|
| the source writes `_dlt_id` (run.PIPELINE_CONFIG)   | normalize 386, load from 300 MB | normalize 282, load from 256 MB: dlt's normalize no longer rewrites the consumption's parquet files a Python string per row id |
| `LOAD_FILE_MAX_ROWS` (files of 500,000 rows)        | copying branch consumption: +165 MB (5.8 million rows, one INSERT) | +75 MB per file |
| DuckDB budget 32 MB (alone, 5.8 million rows merged) | +151 MB     | +121 MB (not taken: the merge is still over) |
| allocator_flush_threshold, bulk_deallocation 1-4 MB, background threads | +165 MB | +165 MB (no effect) |
| parquet row groups of 20,000 rows instead of 94,000 | +86 MB per million rows | +88 MB (no effect) |

DuckDB holds ~15 bytes a row outside its budget (not in duckdb_memory()) for every row one
statement inserts into a table, whatever the columns (2 or 13) or the source (parquet, a table,
CREATE TABLE AS): 1 million rows +73 MB, 5.8 million +151 MB, 11.6 million +223 MB. The
consumption's files are now cut small, but dlt's merge moves the whole staging table into the
destination in one statement: that merge (branch consumption, 5.8 million rows) is the load's
peak now, 269 MB to 413 MB. The extract peaks at 410 MB (a page of branch consumption decoded,
~15 MB of JSON, ~65-80 MB as Python objects, beside the estate's listings). Still over budget.

Loaded an organization at a time (CONSUMPTION_LOAD_MAX_PROJECTS; 2026-12-05, the same
account, whose hourly consumption is now 0.7 million rows): the whole run in one load peaked at
476 MB (the extract 475: pages of branch consumption decoded beside the listings; the branch merge
466); a load per organization's consumption, before the listings, 379 MB, each page decoded from
~230 MB and each merge a quarter of the rows (+130 MB over what the process held, the peak with a
64 MB load budget); with a 32 MB budget 392 and 386, and in the bench's memory row 397, 378
and 354: the merges stay below ~345 MB, and the peak is the listings' extract and normalize
(355-397 MB, their spread by run), from the ~245 MB the process holds after the consumption's
loads (not the pages' leftovers: a page decoded and freed leaves ~5 MB). Every consumption table
held the same rows and sums as the run in one load, against the simulator at the same hour.

Only the `neon-elt` command (cli.console) calls `keep_pandas_out`,
`arrow_uses_the_system_allocator` and `large_blocks_go_back_to_the_os`: a Python session that
imports neon_elt, or runs the source in a pipeline of its own, keeps its pandas, Arrow's default
allocator and glibc's sliding mmap threshold.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.abc
import sys
from typing import Any

# Loads up to this many rows (every test, most accounts) run dlt's load jobs four at a time;
# larger ones one at a time, so that only one table's files are in DuckDB's hands at once.
PARALLEL_LOAD_MAX_ROWS = 100_000

# DuckDB holds memory outside its budget for each row one statement inserts (~15 bytes a row,
# measured): the consumption's rows reach it in files of at most this many rows, a statement each.
LOAD_FILE_MAX_ROWS = 500_000


# A large account's consumption is extracted and loaded before the rest of the run, in parts of
# whole organizations of at most this many projects together (an organization with more alone):
# dlt's merge moves each table's rows into place in one statement, for which DuckDB holds ~15
# bytes a row outside its budget, and a part's pages are decoded with no listings held beside them.
CONSUMPTION_LOAD_MAX_PROJECTS = 1_000


def consumption_loads(project_orgs: list[str | None]) -> list[list[str]]:
    """The organizations whose consumption goes in each load, from each project's organization
    (CONSUMPTION_LOAD_MAX_PROJECTS); one part when they all fit in one."""
    counts: dict[str, int] = {}
    for org_id in project_orgs:
        if org_id:
            counts[org_id] = counts.get(org_id, 0) + 1
    parts: list[list[str]] = []
    projects = CONSUMPTION_LOAD_MAX_PROJECTS
    for org_id, count in sorted(counts.items()):
        if projects + count > CONSUMPTION_LOAD_MAX_PROJECTS:
            parts.append([])
            projects = 0
        parts[-1].append(org_id)
        projects += count
    return parts


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """Answers `import pandas` as if pandas were not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (neon-elt runs without pandas)", name=name)
        return None


def keep_pandas_out() -> None:
    """DuckDB's Python client imports pandas, when it is installed, on the first query with
    parameters (dlt sends some), to check whether a parameter is one of pandas' objects; DuckDB
    has no setting against it. pandas costs the command about 50 MB it never uses: it is in the
    environment for the users' own dlt and DuckDB sessions (`.df()`), not for neon-elt."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _WithoutPandas())


def arrow_uses_the_system_allocator() -> None:
    """Arrow allocates from its own pool (jemalloc or mimalloc) by default, which keeps what it
    freed for later; the consumption tables and dlt's parquet files are built once each, so the
    system's allocator, which hands memory back (with `release_memory`), serves them better."""
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


# mallopt(3)'s parameter number for the mmap threshold (glibc's malloc.h), and its default.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 128 * 1024


def large_blocks_go_back_to_the_os() -> None:
    """glibc serves a block above its mmap threshold (128 KiB) with a mapping of its own, unmapped
    when freed; but each such block freed raises the threshold to its size (up to 32 MiB), and
    from then on Arrow's buffers (the normalize rewrites the consumption's parquet files, a
    million rows and more) come from malloc's arenas instead, which keep them: `release_memory`
    hands back only part, and the load started ~50 MB higher for it. Setting the threshold
    (mallopt) stops that sliding, so large blocks keep going back to the OS when freed."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc
        pass


def release_memory() -> None:
    """Hand freed heap back to the OS between dlt's steps: glibc keeps it otherwise, and the
    extract's listings are freed just before the normalize and the load need theirs."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def load_workers(rows: int) -> int:
    """dlt's load workers for a load of `rows` rows (PARALLEL_LOAD_MAX_ROWS)."""
    return 4 if rows <= PARALLEL_LOAD_MAX_ROWS else 1


# DuckDB's load budget (targets.DuckDBBuild.load_credentials), measured on the account above:
# DuckDB loads within it and spills to disk past it. The load's peak is the budget plus ~25 MB over
# what the process holds (1.7 million branch consumption rows into staging, then merged, by one
# load worker): 64 MB rather than 96 MB keeps the run ~30 MB further inside its 400 MB. The budget
# is per load worker: DuckDB's limit is the database's, and the four workers of a small load
# (load_workers) ran out of it merging two tables at once when they shared 64 MB (120 projects,
# 98,000 rows: 2 runs in 4). 32 MB since the consumption loads by organization: a merge of 1.4
# million branch rows then peaks ~40 MB lower than with 64 MB (above).
DUCKDB_LOAD_MB_PER_WORKER = 32


def duckdb_load_config(load_workers: int) -> dict[str, Any]:
    return {
        "memory_limit": f"{DUCKDB_LOAD_MB_PER_WORKER * load_workers}MB",
        "threads": 1,
        "preserve_insertion_order": False,
    }
