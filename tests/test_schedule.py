"""The contract with a scheduler: what a run leaves behind, the exit codes a scheduler sees (the
README's table, measured for the commands it shows), and the GitHub Actions workflow, whose
commands run here against the simulator as a runner would run them."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import dlt
import pytest
from dlt.common.exceptions import SignalReceivedException
from dlt.pipeline.exceptions import PipelineStepFailed
from neon_elt import cli
from neon_elt.warehouse import WarehouseBusy, run_lock
from neon_simulator import PRESETS, Account, Simulator
from runs import cli_env, run_cli


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------ nothing left behind


def test_a_failed_first_run_leaves_nothing_beside_the_warehouse_path(tmp_path):
    folder = tmp_path / "warehouse"
    folder.mkdir()
    unreachable = f"http://127.0.0.1:{closed_port()}/api/v2"
    env = cli_env(folder / "neon_api.duckdb", None, NEON_API_KEY="napi_any", NEON_API_BASE_URL=unreachable)
    result = run_cli("elt", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("neon-elt: ") and "cannot connect" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == []


def test_the_run_lock_stays_exclusive_while_each_run_removes_its_lock_file(tmp_path):
    """Removing a lock file races with a run that opened it just before: that run could lock the
    removed file while a third run locks a new one. Many runs in a row, each holding the lock
    briefly, must never overlap, and none leaves the lock file behind."""
    published = tmp_path / "neon_api.duckdb"
    inside: list[int] = []
    overlaps: list[tuple[int, int]] = []
    held = {"count": 0}
    guard = threading.Lock()

    def runs(me: int, turns: int) -> None:
        done = 0
        while done < turns:
            try:
                with run_lock(published):
                    with guard:
                        if inside:
                            overlaps.append((inside[0], me))
                        inside.append(me)
                    time.sleep(0.0005)
                    with guard:
                        inside.remove(me)
                        held["count"] += 1
                done += 1
            except WarehouseBusy:
                time.sleep(0)

    threads = [threading.Thread(target=runs, args=(n, 150)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert held["count"] == 4 * 150
    assert overlaps == []
    assert not published.with_name(published.name + ".lock").exists()
    assert os.listdir(tmp_path) == []


def test_a_busy_run_keeps_the_holders_lock_file(tmp_path):
    published = tmp_path / "neon_api.duckdb"
    lock_file = published.with_name(published.name + ".lock")
    with run_lock(published):
        with pytest.raises(WarehouseBusy, match=f"pid {os.getpid()}"):
            with run_lock(published):
                pass
        assert lock_file.read_text() == str(os.getpid())
    assert not lock_file.exists()


def scheduler_env(warehouse: Path, simulator: Simulator | None = None, **extra: str) -> dict[str, str]:
    """A scheduler's environment: no make of ours around it."""
    env = cli_env(warehouse, simulator, **extra)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def tiny_account() -> Account:
    return Account.generate(PRESETS["tiny"])


# ----------------------------------------------------------------------------------- interrupts


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_that_dlt_turns_into_a_step_failure_is_still_an_interrupt(
    number, tiny_account, monkeypatch, capsys, tmp_path
):
    """dlt catches a signal during its load (`SignalReceivedException`, a KeyboardInterrupt) and
    raises it wrapped in its step failure; an interrupt in its extract can come out wrapped too.
    Either was `extract failed: …`, exit 1, where the README says 130 for an interrupt."""

    def load(self, *args, **kwargs):
        try:
            raise SignalReceivedException(number)
        except SignalReceivedException as exc:
            raise PipelineStepFailed(self, "load", None, exc) from exc

    monkeypatch.setattr(dlt.Pipeline, "load", load)
    monkeypatch.chdir(tmp_path)
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(tiny_account) as simulator:
        for name, value in scheduler_env(warehouse, simulator).items():
            monkeypatch.setenv(name, value)
        code = cli.main(["extract"])
    assert code == 128 + number
    name = "" if number == signal.SIGINT else " (SIGTERM)"
    assert last_line(capsys.readouterr().err) == (
        f"neon-elt: interrupted{name}; the published warehouse is unchanged."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []
