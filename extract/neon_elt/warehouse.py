"""Build in a working copy, publish atomically.

DuckDB lets one process write a file, or many processes read it, never both. Analysts keep
read-only sessions open on the warehouse all day, so a run never writes the published file:

1. take an exclusive run lock (`<file>.lock`, there only while a run holds it), so two scheduled
   runs cannot interleave;
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


def lock_path(published: Path) -> Path:
    return published.with_name(published.name + ".lock")


@contextmanager
def run_lock(published: Path) -> Iterator[None]:
    """Hold the run lock of the warehouse: an exclusive flock on `<file>.lock`, which holds the
    holder's pid for the message a second run prints.

    The lock file exists only while a run holds it: the holder removes it before it lets go, so
    a run leaves nothing beside the warehouse (a first run that fails leaves the folder as it
    found it). Removing a lock file races with a run that opened it a moment before: that run
    would lock the removed file while the next one creates and locks a new one, and the two would
    write at once. So a run that gets the lock checks that the file it locked is still the one at
    the path (same inode), and if not, tries again on the new one. Only the holder ever removes the
    file, and only while it holds the lock, so a locked file that is still at the path is the lock.
    (A run killed with SIGKILL leaves the file; the kernel lets go of its lock, and the next run
    takes it and removes it.)"""
    path = lock_path(published)
    while True:
        # read-only: a lock needs no write access, and a file held open for writing would stop
        # the file system from being remounted read-only
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WarehouseBusy(
                f"another run is writing {published.name} (pid {holder}); try again when it ends"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:  # removed by the run that held it: try again
            pass
        os.close(fd)  # a file its holder removed meanwhile: try again on the new one
    try:
        path.write_text(str(os.getpid()))
        yield
    finally:
        try:
            path.unlink()  # before the lock is released: see above
        except OSError:  # its folder is gone, or read-only
            pass
        os.close(fd)  # releases the lock


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
