"""The contract with a scheduler: what a run leaves behind, the exit codes a scheduler sees (the
README's table, measured for the commands it shows), the README's cron line, and the GitHub
Actions workflow, whose steps run here against the simulator as a runner would run them."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import dlt
import pytest
import yaml
from dlt.common.exceptions import SignalReceivedException
from dlt.pipeline.exceptions import PipelineStepFailed
from neon_elt import cli
from neon_elt.warehouse import WarehouseBusy, run_lock
from neon_simulator import PRESETS, Account, Simulator
from runs import cli_env, file_digest, free_port, run_cli
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

README = REPO / "README.md"
WORKFLOW = REPO / ".github" / "workflows" / "neon-elt.yml"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------ nothing left behind


def test_a_failed_first_run_leaves_nothing_beside_the_warehouse_path(tmp_path):
    folder = tmp_path / "warehouse"
    folder.mkdir()
    unreachable = f"http://127.0.0.1:{free_port()}/api/v2"
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


def scheduler_env(warehouse: Path, simulator: Simulator | None = None, **extra: str) -> dict[str, str]:
    """A scheduler's environment: no make of ours around it."""
    env = cli_env(warehouse, simulator, **extra)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def tiny_account() -> Account:
    return Account.generate(PRESETS["tiny"])


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


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/api/v2"


MAKE_ERROR = re.compile(r"make: \*\*\* \[Makefile:\d+: (\w+)\] Error (\d+)")


@pytest.mark.parametrize("row", exit_code_table(), ids=lambda row: row.situation)
def test_the_readme_exit_code_table_is_true_for_the_commands_it_shows(row, tiny_account, tmp_path):
    measured, runner_line = {}, None
    for n, command in enumerate(row.codes):
        code, stdout, stderr = run_situation(row.situation, command, tiny_account, tmp_path / str(n))
        measured[command] = code
        if row.situation == "published":
            assert last_line(stdout) == f"Warehouse published: {tmp_path / str(n) / 'neon_api.duckdb'}", (
                stderr
            )
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


def checkout(folder: Path) -> Path:
    """A checkout of the project as a scheduler sees one, sharing this one's environment."""
    if subprocess.run(["make", "-q", "env"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.fail(".venv is not up to date with uv.lock: run `make env` first")
    folder.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "uv.lock", ".venv"):
        (folder / name).symlink_to(REPO / name)
    (folder / ".dlt").mkdir()
    (folder / ".dlt" / "config.toml").symlink_to(REPO / ".dlt" / "config.toml")
    return folder


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


# -------------------------------------------------------------------------------- GitHub Actions


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


def steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def uses(step: dict) -> str:
    return step.get("uses", "").split("@")[0]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))


def test_the_workflow_runs_on_a_schedule_with_the_key_as_a_secret_one_run_at_a_time():
    flow = workflow()
    (cron,) = [entry["cron"] for entry in flow["on"]["schedule"]]
    assert len(cron.split()) == 5
    assert "workflow_dispatch" in flow["on"]
    assert flow["env"]["NEON_API_KEY"] == "${{ secrets.NEON_API_KEY }}"
    assert flow["concurrency"]["cancel-in-progress"] is False
    assert flow["defaults"]["run"]["shell"] == "bash"  # -eo pipefail: `… | tee` fails with the run
    for step in steps():
        for target in re.findall(r"\bmake (?:-\w+ )*([a-z-]+)", step.get("run", "")):
            assert target in makefile_targets(), step
    # the warehouse goes from run to run: restored from and saved to the cache under one path
    restore, save = (next(s for s in steps() if uses(s) == f"actions/cache/{a}") for a in ("restore", "save"))
    warehouse = "${{ env.NEON_DUCKDB_PATH }}"
    assert restore["with"]["path"] == save["with"]["path"] == warehouse
    assert "NEON_DUCKDB_PATH" in flow["env"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"].strip())
    assert steps().index(restore) < steps().index(save)
    # what the team reads: the warehouse and the report, where `make report` writes it
    (upload,) = [s for s in steps() if uses(s) == "actions/upload-artifact"]
    report = cli.parser().parse_args(["report"]).output
    assert {line.strip() for line in upload["with"]["path"].splitlines()} == {warehouse, report}


@dataclasses.dataclass
class StepResult:
    name: str
    ran: bool
    code: int | None = None
    output: str = ""


class Runner:
    """Runs the workflow's steps as a GitHub runner does, in a fresh checkout: `run:` steps with
    `bash -eo pipefail`, `if:` conditions, and the actions it uses played locally (the cache in
    a folder that outlives the runs, artifacts checked for presence)."""

    def __init__(self, cache: Path, env: dict[str, str]):
        self.cache = cache
        self.env = env
        self.run_id = 0

    def expand(self, text: str, env: dict[str, str]) -> str:
        def value(match: re.Match) -> str:
            kind, _, name = match[1].strip().partition(".")
            if kind == "env":
                return env[name]
            if kind == "secrets":
                return env[name]  # the test's environment holds the secret under its own name
            if kind == "github" and name == "run_id":
                return str(self.run_id)
            raise AssertionError(f"the test runner does not know ${{{{ {match[1]} }}}}")

        return re.sub(r"\$\{\{(.*?)\}\}", value, text)

    def run(self, workspace: Path) -> list[StepResult]:
        self.run_id += 1
        flow = workflow()
        env = dict(self.env)
        env.update({k: self.expand(str(v), self.env) for k, v in flow["env"].items()})
        failed, results = False, []
        for step in steps():
            condition = step.get("if", "success()")
            should = {"success()": not failed, "failure()": failed, "always()": True}[condition]
            result = StepResult(step.get("name") or step.get("uses") or step["run"], should)
            results.append(result)
            if not should:
                continue
            if "run" in step:
                script = workspace.parent / f"step-{self.run_id}-{len(results)}.sh"
                script.write_text(self.expand(step["run"], env))
                done = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                    cwd=workspace,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                result.code, result.output = done.returncode, done.stdout + done.stderr
            else:
                result.code = self.action(
                    uses(step),
                    {k: self.expand(str(v), env) for k, v in step.get("with", {}).items()},
                    workspace,
                )
            failed = failed or result.code != 0
        return results

    def action(self, name: str, inputs: dict[str, str], workspace: Path) -> int:
        if name in ("actions/checkout", "actions/setup-python"):
            return 0  # the workspace is a checkout; the Python is this one
        if name == "actions/cache/restore":
            saved = sorted(
                self.cache.glob(inputs["restore-keys"].strip() + "*"), key=lambda p: p.stat().st_mtime
            )
            if saved:  # the newest cache whose key starts so
                shutil.copyfile(saved[-1] / inputs["path"], workspace / inputs["path"])
            return 0
        if name == "actions/cache/save":
            (self.cache / inputs["key"]).mkdir()
            shutil.copyfile(workspace / inputs["path"], self.cache / inputs["key"] / inputs["path"])
            return 0
        if name == "actions/upload-artifact":
            paths = [line.strip() for line in inputs["path"].splitlines() if line.strip()]
            missing = [path for path in paths if not (workspace / path).is_file()]
            return 1 if missing else 0
        raise AssertionError(f"the test runner does not know the action {name}")


def test_the_workflow_carries_the_warehouse_from_run_to_run_and_fails_visibly(tiny_account, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with Simulator(tiny_account) as simulator:
        env = scheduler_env(tmp_path / "unused.duckdb", simulator)
        runner = Runner(cache, env)

        first = runner.run(checkout(tmp_path / "run1" / "neon-elt"))
        assert all(step.code == 0 for step in first if step.ran), [(s.name, s.output[-2000:]) for s in first]
        assert [step.name for step in first if not step.ran] == ["Say why the run failed"]
        assert "full run (first run)" in next(s.output for s in first if s.name == "Extract and build")

        second = runner.run(checkout(tmp_path / "run2" / "neon-elt"))  # a new runner, the cache kept
        assert all(step.code == 0 for step in second if step.ran), [
            (s.name, s.output[-2000:]) for s in second
        ]
        assert "incremental run" in next(s.output for s in second if s.name == "Extract and build")
        kept = workflow()["env"]["NEON_DUCKDB_PATH"]  # the file the cache steps carry
        saved = {p.name: file_digest(p / kept) for p in cache.iterdir()}
        assert len(saved) == 2

    runner.env["NEON_API_BASE_URL"] = unreachable_url()
    third = runner.run(checkout(tmp_path / "run3" / "neon-elt"))
    by_name = {step.name: step for step in third}
    extract = by_name["Extract and build"]
    assert extract.code == 1  # the runner's own code reaches the step, through `| tee`
    assert not any(step.ran for step in third[third.index(extract) + 1 : -1])  # nothing saved or published
    cause = last_line(extract.output)
    assert cause.startswith("neon-elt: ") and "cannot connect" in cause
    assert by_name["Say why the run failed"].output.strip() == f"::error title=neon-elt failed::{cause}"
    assert {p.name: file_digest(p / kept) for p in cache.iterdir()} == saved


def test_make_takes_the_target_from_the_environment_as_the_runner_does(tmp_path):
    """The workflow's PostgreSQL variant sets NEON_ELT_TARGET once, for the runner and for
    `make report` alike (make used to set it back to duckdb)."""
    project = checkout(tmp_path / "neon-elt")
    port = free_port()
    env = scheduler_env(
        tmp_path / "neon_api.duckdb",
        NEON_ELT_TARGET="postgres",
        PGHOST="127.0.0.1",
        PGPORT=str(port),
        PGUSER="analyst",
        PGDATABASE="warehouse",
    )
    for command in ([".venv/bin/neon-elt", "report"], ["make", "report"]):
        result = subprocess.run(command, env=env, cwd=project, capture_output=True, text=True, timeout=120)
        assert (
            f"cannot connect to PostgreSQL at postgresql://analyst@127.0.0.1:{port}/warehouse"
            in result.stderr
        )
