"""Faults of the machine a scheduled run can meet: too little room for the working copy, a disk
that fills during the load or dbt, a read-only file system, the warehouse's folder removed
mid-run. Each ends the run with exit 1 and one line that names the folder (and, for a full disk,
the room a run needs), leaves the published warehouse as it was, and leaves nothing behind that
the run could remove.

Full and read-only disks are small tmpfs mounts: the tests that need one skip where mounting is
not allowed (not root, or a container without CAP_SYS_ADMIN)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from neon_elt import warehouse
from neon_elt.warehouse import MachineFault, space_needed, working_copy
from neon_simulator import Simulator
from runs import cli_env, file_digest, last_line, run_cli

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def sizes_in(message: str) -> list[int]:
    """The sizes a message gives, in bytes (rounded as printed)."""
    return [int(float(n) * UNITS[unit]) for n, unit in re.findall(r"([\d.]+) (bytes|KiB|MiB|GiB)", message)]


def mount(folder: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *options, str(folder)], capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Callable[[int], Path]]:
    """`tmpfs(size)`: a folder on a file system of `size` bytes of its own."""
    mounted: list[Path] = []

    def make(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        result = mount(folder, "-t", "tmpfs", "-o", f"size={size}", "neon-elt-test")
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def published_copy(demo_warehouse) -> Callable[[Path], Path]:
    def place(folder: Path) -> Path:
        path = folder / "neon_api.duckdb"
        shutil.copyfile(demo_warehouse, path)
        return path

    return place


def start_run(published: Path, simulator: Simulator, cwd: Path) -> subprocess.Popen:
    """`neon-elt elt` in a child process; its dbt writes its target folder in `cwd`/dbt-target."""
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("neon-elt")), "elt"],
        env=cli_env(published, simulator, DBT_TARGET_PATH=str(cwd / "dbt-target")),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _dbt_running(process: subprocess.Popen) -> bool:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            if "dbt" in " ".join(child.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def wait_for(moment: str, process: subprocess.Popen, simulator: Simulator, cwd: Path) -> None:
    """Until the run started in `cwd` (start_run) is at `moment`: `extract` (requests under way,
    the working copy made) or `dbt` (dbt building)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before {moment}: {process.communicate()}"
        if moment == "extract" and simulator.stats.total >= 10:
            return
        # dbt is under way once it has run a node: it writes the node's SQL under target/run
        if moment == "dbt" and _dbt_running(process) and (cwd / "dbt-target" / "run").exists():
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never reached {moment}")


def fill(folder: Path) -> Path:
    """Write a file until the disk is full."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for chunk in (b"\0" * 2**16, b"\0" * 2**12):  # to the last page
            try:
                while handle.write(chunk):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def leftovers(folder: Path, published: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != published)


# ------------------------------------------------------------------------------------ full disk


def test_too_little_room_for_the_working_copy_stops_before_any_api_work(
    tmpfs, published_copy, demo_account, tmp_path
):
    size = published_copy(tmp_path).stat().st_size
    disk = tmpfs(size + size // 2)  # the published file fits, its working copy cannot
    published = published_copy(disk)
    before, free = file_digest(published), shutil.disk_usage(disk).free
    assert free < size
    with Simulator(demo_account) as simulator:
        result = run_cli("elt", env=cli_env(published, simulator), cwd=tmp_path)
        requests = simulator.stats.total
    assert result.returncode == 1, result.stderr
    message = last_line(result.stderr)
    assert message.startswith(f"neon-elt: not enough space in {disk}: a run needs about "), message
    needed, said_free = sizes_in(message)
    assert needed >= size  # at least the working copy
    assert abs(said_free - free) <= 0.1 * free
    assert "Traceback" not in result.stderr
    assert requests == 0
    assert file_digest(published) == before
    assert leftovers(disk, published) == []


def test_a_disk_that_fills_while_the_copy_is_made_is_one_line(tmpfs, published_copy, monkeypatch, tmp_path):
    """The room checked before the run is gone when the copy is made (another process took it): the
    copy fails on a full disk, which was a traceback."""
    size = published_copy(tmp_path).stat().st_size
    disk = tmpfs(size + size // 2)
    published = published_copy(disk)
    before = file_digest(published)
    monkeypatch.setattr(warehouse, "check_space", space_needed)  # the room looked sufficient
    with pytest.raises(MachineFault) as caught:
        with working_copy(published):
            raise AssertionError("the copy cannot fit")
    message = str(caught.value)
    assert message.startswith(f"no space left in {disk}: a run needs about "), message
    assert sizes_in(message)[0] == pytest.approx(space_needed(published), rel=0.05)
    assert message.endswith("the published warehouse is unchanged")
    assert file_digest(published) == before
    assert leftovers(disk, published) == []


@pytest.mark.parametrize("moment", ["extract", "dbt"])
def test_a_disk_that_fills_during_the_run_fails_it_in_one_line(
    moment, tmpfs, published_copy, demo_account, tmp_path
):
    reference = published_copy(tmp_path)
    size = reference.stat().st_size
    disk = tmpfs(size + space_needed(reference) + 2**22)  # room for a run
    published = published_copy(disk)
    before = file_digest(published)
    with Simulator(demo_account, latency=0.05) as simulator:
        run = start_run(published, simulator, tmp_path)
        wait_for(moment, run, simulator, tmp_path)
        filler = fill(disk)
        _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr
    message = last_line(stderr)
    assert message.startswith(f"neon-elt: no space left in {disk}: a run needs about "), stderr
    assert message.endswith("the published warehouse is unchanged")
    assert sizes_in(message)[0] >= size
    assert "Traceback" not in stderr
    assert file_digest(published) == before
    filler.unlink()
    assert leftovers(disk, published) == []


# ------------------------------------------------------------------------------ read-only disk


@pytest.mark.parametrize("moment", ["before", "extract"])
def test_a_read_only_file_system_fails_the_run_in_one_line(
    moment, tmpfs, published_copy, demo_account, tmp_path
):
    reference = published_copy(tmp_path)
    disk = tmpfs(reference.stat().st_size + space_needed(reference) + 2**22)  # room for a run
    published = published_copy(disk)
    before = file_digest(published)
    with Simulator(demo_account, latency=0.05) as simulator:
        if moment == "before":
            assert mount(disk, "-o", "remount,ro").returncode == 0
            run = start_run(published, simulator, tmp_path)
        else:
            run = start_run(published, simulator, tmp_path)
            wait_for(moment, run, simulator, tmp_path)
            remounted = mount(disk, "-o", "remount,ro")
            assert remounted.returncode == 0, remounted.stderr  # the run holds no file open for writing
        _, stderr = run.communicate(timeout=300)
        requests = simulator.stats.total
    assert run.returncode == 1, stderr
    message = last_line(stderr)
    assert message.startswith(f"neon-elt: cannot write in {disk}: the file system is read-only"), stderr
    assert "Traceback" not in stderr
    if moment == "before":
        assert requests == 0
    assert file_digest(published) == before
    assert mount(disk, "-o", "remount,rw").returncode == 0


# ------------------------------------------------------------------------ the folder removed


@pytest.mark.parametrize("moment", ["extract", "dbt"])
def test_the_warehouse_folder_removed_mid_run_is_one_line(moment, published_copy, demo_account, tmp_path):
    folder = tmp_path / "team"
    folder.mkdir()
    published = published_copy(folder)
    with Simulator(demo_account, latency=0.05) as simulator:
        run = start_run(published, simulator, tmp_path)
        wait_for(moment, run, simulator, tmp_path)
        shutil.rmtree(folder)
        stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr
    assert (
        last_line(stderr)
        == f"neon-elt: the folder {folder} was removed during the run; nothing was published"
    )
    assert "Traceback" not in stderr
    assert "Warehouse published" not in stdout
    assert not folder.exists()  # nothing recreated it


def test_a_full_disk_outside_the_warehouse_folder_is_named_too(tmpfs, published_copy, demo_account, tmp_path):
    """dlt keeps its load packages in its own folder (DLT_DATA_DIR, else ~/.dlt), often on another
    disk than the warehouse: the line names the folder that is full, not the warehouse's."""
    (tmp_path / "team").mkdir()
    published = published_copy(tmp_path / "team")
    before = file_digest(published)
    dlt_disk = tmpfs(2**20)
    fill(dlt_disk)
    with Simulator(demo_account) as simulator:
        env = cli_env(published, simulator, DLT_DATA_DIR=str(dlt_disk))
        result = run_cli("elt", env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    message = last_line(result.stderr)
    named = re.fullmatch(r"neon-elt: no space left in (/\S+): free some space there; .*", message)
    assert named and Path(named[1]).is_relative_to(dlt_disk), message
    assert "Traceback" not in result.stderr
    assert file_digest(published) == before
    assert leftovers(published.parent, published) == []
