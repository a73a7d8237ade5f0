"""The contract with a scheduler: what a run leaves behind, the exit codes a scheduler sees (the
README's table, measured for the commands it shows) and the README's cron line. The GitHub
Actions workflow has its own module (test_workflow.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import dlt
import pytest
from dlt.common.exceptions import SignalReceivedException
from dlt.pipeline.exceptions import PipelineStepFailed
from neon_elt import cli
from neon_elt.warehouse import WarehouseBusy, run_lock
from neon_simulator import Account, Simulator
from runs import checkout, cli_env, last_line, run_cli, scheduler_env, unreachable_url
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

README = REPO / "README.md"


# ------------------------------------------------------------------------------ nothing left behind


def test_a_failed_first_run_leaves_nothing_beside_the_warehouse_path(tmp_path):
    folder = tmp_path / "warehouse"
    folder.mkdir()
    env = cli_env(
        folder / "neon_api.duckdb", None, NEON_API_KEY="napi_any", NEON_API_BASE_URL=unreachable_url()
    )
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


# ----------------------------------------------------------------------------------- exit codes


def schedule_section() -> str:
    text = README.read_text()
    start = text.index("## Run it on a schedule")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@dataclasses.dataclass
class Row:
    situation: str
    codes: dict[str, int]  # command -> exit code


# What each row of the README's table is about, told by a word of its first cell.
SITUATIONS = {
    "published": "published",
    "failed": "failed",
    "configuration": "configuration",
    "another run": "busy",
    "interrupted": "interrupted",
}


def exit_code_table() -> list[Row]:
    lines = [line for line in schedule_section().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    commands = {i: cell.strip("`") for i, cell in enumerate(header) if cell.startswith("`")}
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        (situation,) = [name for word, name in SITUATIONS.items() if word in cells[0]]
        rows.append(Row(situation, {command: int(cells[i]) for i, command in commands.items()}))
    return rows


def test_the_table_shows_every_situation_for_the_runner_and_for_make():
    rows = exit_code_table()
    assert sorted(row.situation for row in rows) == sorted(SITUATIONS.values())
    for row in rows:
        assert {command.split()[0] for command in row.codes} == {".venv/bin/neon-elt", "make"}


def shell_code(returncode: int) -> int:
    """The exit code a shell reports: 128 + the signal's number for a process a signal ended."""
    return 128 - returncode if returncode < 0 else returncode


def run_situation(situation: str, command: str, account: Account, folder: Path, cwd: Path = REPO):
    """Run `command` (a shell command line) in `situation`; (exit code, stdout, stderr)."""
    folder.mkdir(parents=True)
    warehouse = folder / "neon_api.duckdb"

    def run(env: dict[str, str]):
        done = subprocess.run(
            command, shell=True, env=env, cwd=cwd, capture_output=True, text=True, timeout=600
        )
        return shell_code(done.returncode), done.stdout, done.stderr

    if situation == "published":
        with Simulator(account) as simulator:
            return run(scheduler_env(warehouse, simulator))
    if situation == "failed":
        return run(scheduler_env(warehouse, NEON_API_KEY="napi_any", NEON_API_BASE_URL=unreachable_url()))
    if situation == "configuration":
        return run(scheduler_env(warehouse, NEON_API_KEY="napi_any", NEON_API_BASE_URL="ftp://example.com"))
    if situation == "busy":
        with run_lock(warehouse):
            return run(scheduler_env(warehouse, NEON_API_KEY="napi_any", NEON_API_BASE_URL=unreachable_url()))
    assert situation == "interrupted"
    with Simulator(account, latency=0.5) as simulator:
        process = subprocess.Popen(
            command,
            shell=True,
            env=scheduler_env(warehouse, simulator),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # whose Ctrl-C is live
        )
        deadline = time.monotonic() + 120
        while simulator.stats.total == 0 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        stdout, stderr = process.communicate(timeout=120)
    return shell_code(process.returncode), stdout, stderr


MAKE_ERROR = re.compile(r"make: \*\*\* \[Makefile:\d+: (\w+)\] Error (\d+)")


def exit_code_cases() -> list:
    """A test per row of the table, but a test per command for the published row: each command is a
    whole run, and two in one test neared the 60 s a test may take. Only the other rows compare
    the commands' last lines, so the split loses no check."""
    cases = []
    for row in exit_code_table():
        if row.situation == "published":
            cases += [
                pytest.param(
                    Row(row.situation, {command: code}), id=f"published-{Path(command.split()[0]).name}"
                )
                for command, code in row.codes.items()
            ]
        else:
            cases.append(pytest.param(row, id=row.situation))
    return cases


@pytest.mark.parametrize("row", exit_code_cases())
def test_the_readme_exit_code_table_is_true_for_the_commands_it_shows(row, tiny_account, tmp_path):
    measured, runner_line = {}, None
    for n, command in enumerate(row.codes):
        code, stdout, stderr = run_situation(row.situation, command, tiny_account, tmp_path / str(n))
        measured[command] = code
        if row.situation == "published":
            assert last_line(stdout) == f"Warehouse published: {tmp_path / str(n) / 'neon_api.duckdb'}", (
                stderr
            )
            # a scheduler's log (cron's elt.log) is plain text: no terminal colours from dbt
            assert "\x1b[" not in stdout + stderr
            continue
        lines = [line for line in stderr.splitlines() if line.strip()]
        if command.startswith("make"):
            if row.situation != "interrupted":  # make's line: `Error <the runner's code>`
                assert MAKE_ERROR.fullmatch(lines[-1]), stderr
                assert int(MAKE_ERROR.fullmatch(lines[-1])[2]) == row.codes[".venv/bin/neon-elt elt"]
            lines = [line for line in lines if not line.startswith("make: ")]
        # the runner's one line, last of its own
        assert lines and lines[-1].startswith("neon-elt: "), (command, code, stderr)
        assert runner_line is None or lines[-1].split(":")[:2] == runner_line.split(":")[:2]
        runner_line = lines[-1]
    assert measured == row.codes


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


# ----------------------------------------------------------------------------------- the cron line


def cron_command() -> tuple[str, str]:
    """The README's crontab line: (its schedule, its command)."""
    block = re.search(r"```crontab\n(.*?)\n```", schedule_section(), re.S)
    assert block, "the README shows a crontab line"
    (line,) = [line for line in block[1].splitlines() if line.strip() and not line.startswith("#")]
    fields = line.split(None, 5)
    return " ".join(fields[:5]), fields[5]


@pytest.mark.parametrize("situation", ["failed", "busy"])
def test_the_cron_line_mails_a_failure_and_keeps_quiet_when_the_last_run_is_still_going(
    situation, tiny_account, tmp_path
):
    schedule, command = cron_command()
    assert len(schedule.split()) == 5 and "%" not in command  # cron would cut the line at a %
    folder = re.search(r"cd (\S+) &&", command)[1]
    project = checkout(tmp_path / "neon-elt")
    command = command.replace(folder, str(project))
    code, mailed, _ = run_situation(
        situation, f"sh -c {shlex.quote(command)}", tiny_account, tmp_path / "warehouse", cwd=tmp_path
    )
    log = (project / "elt.log").read_text()
    if situation == "busy":
        assert "another run is writing" in last_line(log)
        assert mailed == ""  # nothing for cron to mail
    else:
        assert "cannot connect" in last_line(log)
        assert last_line(mailed) == last_line(log)  # cron mails the last lines, the cause last
    assert code == 0  # cron ignores it anyway
