"""Build in a working copy, publish atomically.

DuckDB lets one process write a file, or many processes read it, never both. Analysts keep
read-only sessions open on the warehouse all day, so a run never writes the published file:

1. take an exclusive run lock (`<file>.lock`), so two scheduled runs cannot interleave;
2. copy the published file into a private folder beside it (same file name, so DuckDB's catalog
   name, which dbt's views refer to, stays the same);
3. extract and transform into the copy;
4. checkpoint it and `rename()` it over the published file, which is atomic on POSIX.

Readers that hold the old file open keep reading the old, complete data until they reconnect;
new connections see the new data. A run that fails or is killed at any point leaves the published
file untouched; its working folder is removed on the next run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


class WarehouseBusy(Exception):
    """Another run holds the lock."""


def working_dir(published: Path) -> Path:
    return published.parent / f".{published.name}.building"


@contextmanager
def run_lock(published: Path) -> Iterator[None]:
    lock_path = published.with_name(published.name + ".lock")
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WarehouseBusy(
                f"another run is writing {published.name} (pid {holder}); try again when it ends"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def working_copy(published: Path, publish: bool = True) -> Iterator[Path]:
    """Yields the path of a private copy of the warehouse. On normal exit of the `with` block the
    copy replaces the published file (unless not `publish`); on an exception it is thrown away."""
    with run_lock(published):
        folder = working_dir(published)
        shutil.rmtree(folder, ignore_errors=True)  # left over by a killed run
        folder.mkdir()
        working = folder / published.name
        try:
            if published.exists():
                shutil.copyfile(published, working)
            yield working
            if publish:
                swap_in(working, published)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def swap_in(working: Path, published: Path) -> None:
    """Fold the write-ahead log into the file, then swap it in atomically."""
    if not working.exists():
        return
    connection = duckdb.connect(str(working))
    try:
        connection.execute("checkpoint")
    finally:
        connection.close()
    wal = working.with_name(working.name + ".wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{wal} still holds unflushed changes; not publishing")
    os.replace(working, published)
