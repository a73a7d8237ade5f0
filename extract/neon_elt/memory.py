"""What keeps a large extract within its memory budget. Every process-wide switch the runner
flips lives here, and nowhere else.

The budget: peak RSS of `neon-elt extract` below 400 MB on an account of 5,000 projects and
25,000 branches with every organization's consumption (`make bench`'s memory row:
bench/extract_child.py runs the command in a child process against the simulator). What each
measure saves, measured, is in docs/benchmarks.md (Memory).

Where the memory goes: ~140 MB is the interpreter with dlt, DuckDB and Arrow imported; the
extract holds the estate's listings and decodes a page of branch consumption (1,000 branches x
60 days) at a time; the normalize leaves Arrow buffers behind; the load takes DuckDB's budget
plus ~15 bytes a row, outside the budget, for every row one statement inserts. Hence:

- `keep_pandas_out`: the command never imports pandas (~50 MB it would not use);
- `arrow_uses_the_system_allocator`, `large_blocks_go_back_to_the_os` and `release_memory`:
  what Arrow and the extract free goes back to the OS before the next step needs it;
- `load_workers`: a large load runs one job at a time, one table's files in DuckDB's hands;
- `LOAD_FILE_MAX_ROWS`: the consumption reaches DuckDB in files of bounded rows, a statement each;
- `CONSUMPTION_LOAD_MAX_PROJECTS`: a large account's consumption is extracted and loaded first,
  whole organizations at a time, so that each merge moves a part of the rows and no page is
  decoded beside the listings;
- `DUCKDB_LOAD_MB_PER_WORKER`: DuckDB's load budget, past which it spills to disk;
- the source writes `_dlt_id` itself (run.PIPELINE_CONFIG), so that dlt's normalize does not
  rewrite the consumption's parquet files to add it.

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


# DuckDB's load budget per load worker (targets.DuckDBBuild.load_credentials): DuckDB loads within
# it and spills to disk past it. Per worker, because DuckDB's limit is the database's, and the four
# workers of a small load (load_workers) can merge two tables at once. 32 MB: with the consumption
# loaded a part at a time, each merge peaks lower with it than with 64 MB, and the run stays
# inside its budget (docs/benchmarks.md, Memory).
DUCKDB_LOAD_MB_PER_WORKER = 32


def duckdb_load_config(load_workers: int) -> dict[str, Any]:
    return {
        "memory_limit": f"{DUCKDB_LOAD_MB_PER_WORKER * load_workers}MB",
        "threads": 1,
        "preserve_insertion_order": False,
    }
