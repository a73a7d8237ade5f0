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

The machine can fail a run too: a disk that is full or fills up, a file system that is or turns
read-only, the warehouse's folder removed while the run works in it. A run checks the room it
needs before it starts (and so before any API work), and any such fault ends it with one line that
names the folder (`MachineFault`, exit 1), never a traceback.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
from neon_api_source.helpers import exception_chain


class WarehouseBusy(Exception):
    """Another run holds the lock."""


class MachineFault(Exception):
    """The machine failed the run (disk full, read-only file system, folder removed): one line
    that names the folder, exit 1."""


# The faults of the machine a run can meet when it writes, as the OS names them; DuckDB and dbt
# pass the same words on in their own messages, which is how a fault is told inside them.
FAULT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO)
FAULT_TEXTS = {os.strerror(code): code for code in FAULT_ERRNOS}  # "No space left on device", …
_QUOTED_PATH = re.compile(r"[\"'](/[^\"']+)[\"']")

# Room a run needs beside the warehouse, besides the published file itself: the working copy (as
# big as the published file) and what the load and dbt add to it. Measured on the demo account
# (a 13 to 16 MB warehouse): the working copy peaks at 1.03x the published file in an incremental
# run, 1.06x in a full refresh and 1.22x in a warehouse's second run; a first run's is the whole
# new warehouse. DuckDB spills into the working folder when a load outgrows its memory limit.
LOAD_ROOM_SHARE = 0.25
LOAD_ROOM_MIN_BYTES = 32 * 2**20


def space_needed(published: Path) -> int:
    """Free bytes a run needs in the warehouse's folder: the working copy and room for the load."""
    size = published.stat().st_size if published.exists() else 0
    return size + max(int(size * LOAD_ROOM_SHARE), LOAD_ROOM_MIN_BYTES)


def human_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 10 else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def free_space(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def check_space(published: Path) -> int:
    """Refuse a run that clearly has not the room it needs; returns what it needs."""
    needed = space_needed(published)
    free = free_space(published.parent)
    if free < needed:
        raise MachineFault(
            f"not enough space in {published.parent}: a run needs about {human_size(needed)} free "
            f"there (a working copy of {published.name} and room for the load), {human_size(free)} "
            "is free; nothing was read or written"
        )
    return needed


def find_fault(exc: BaseException) -> tuple[int, str | None] | None:
    """(errno, path or None) of the first machine fault in an exception chain: an OSError, or the
    message of DuckDB, dlt or dbt that passes one on."""
    for current in exception_chain(exc):
        if isinstance(current, OSError) and current.errno in FAULT_ERRNOS:
            return current.errno, current.filename
        message = str(current)
        for text, code in FAULT_TEXTS.items():
            if text in message:
                paths = _QUOTED_PATH.findall(message)
                return code, paths[0] if paths else None
    return None


def _nearest_folder(path: Path) -> Path:
    """The path if it is a folder, else the nearest folder above it that exists."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def describe_fault(code: int, folder: Path) -> str:
    """The fault as a user acts on it, naming the folder."""
    if code in (errno.ENOSPC, errno.EDQUOT):
        quota = " (disk quota exceeded)" if code == errno.EDQUOT else ""
        return f"no space left in {folder}{quota}"
    if code == errno.EROFS:
        return f"cannot write in {folder}: the file system is read-only"
    if code == errno.EFBIG:
        return f"cannot write in {folder}: a file grew past the file size limit (ulimit -f)"
    return f"cannot write in {folder}: {os.strerror(code).lower()} (a failing disk?)"


def _fullest(folders: list[Path]) -> Path:
    """The folder on the disk with the least room left (the first one of equals)."""
    return min(folders, key=lambda folder: free_space(_nearest_folder(folder)))


def machine_fault(
    exc: BaseException,
    published: Path,
    needed: int,
    working_gone: bool = False,
    also_writes: Sequence[Path] = (),
) -> MachineFault | None:
    """The one-line fault behind a failed run in a working copy of `published`, or None if the
    machine did not fail it. Called after the working copy is removed, so the free space it
    reports is the room the run had; `working_gone`: the copy had vanished before that.
    `also_writes`: the other folders the run writes in (dlt's, dbt's), for a full disk whose
    message names no file: the one with the least room left is named."""
    if isinstance(exc, MachineFault):
        return exc
    folder = published.parent
    if not folder.exists():
        return MachineFault(f"the folder {folder} was removed during the run; nothing was published")
    found = find_fault(exc)
    if found is None:
        if working_gone:
            return MachineFault(
                f"the run's working copy {working_dir(published)} was removed while the run "
                "worked in it; nothing was published"
            )
        return None
    code, path = found
    if path is None:
        where = _fullest([folder, *also_writes]) if code in (errno.ENOSPC, errno.EDQUOT) else folder
    elif Path(path).is_relative_to(folder):  # the working copy is ours: name the warehouse's folder
        where = folder
    else:
        where = _nearest_folder(Path(path))
    message = describe_fault(code, where)
    if code in (errno.ENOSPC, errno.EDQUOT):
        if where == folder:
            message += (
                f": a run needs about {human_size(needed)} free there, "
                f"{human_size(free_space(folder))} is free"
            )
        else:
            message += ": free some space there"
    return MachineFault(f"{message}; the published warehouse is unchanged")


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
def working_copy(published: Path, publish: bool = True, also_writes: Sequence[Path] = ()) -> Iterator[Path]:
    """Yields the path of a private copy of the warehouse. On normal exit of the `with` block the
    copy replaces the published file (unless not `publish`); on an exception it is thrown away,
    and a fault of the machine behind it becomes a `MachineFault` (`also_writes`: the other
    folders the run writes in, see `machine_fault`)."""
    with run_lock(published):
        folder = working_dir(published)
        shutil.rmtree(folder, ignore_errors=True)  # left over by a killed run
        needed = check_space(published)
        working = folder / published.name
        created = False
        try:
            folder.mkdir()
            created = True
            if published.exists():
                shutil.copyfile(published, working)
            yield working
            if publish:
                swap_in(working, published)
        except Exception as exc:
            working_gone = created and not folder.exists()
            shutil.rmtree(folder, ignore_errors=True)  # first, so the free space is the run's room
            fault = machine_fault(exc, published, needed, working_gone, also_writes)
            if fault is None or fault is exc:
                raise
            raise fault from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def swap_in(working: Path, published: Path) -> None:
    """Fold the write-ahead log into the file, then swap it in atomically."""
    if not working.exists():  # every run writes its working copy: someone removed it
        raise FileNotFoundError(errno.ENOENT, "the working copy is gone", str(working))
    connection = duckdb.connect(str(working))
    try:
        connection.execute("checkpoint")
    finally:
        connection.close()
    wal = working.with_name(working.name + ".wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{wal} still holds unflushed changes; not publishing")
    os.replace(working, published)
