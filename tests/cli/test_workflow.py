"""The GitHub Actions workflow (.github/workflows/neon-elt.yml): its settings, and its steps run
here against the simulator as a runner would run them, the warehouse carried from run to run in
a folder that plays GitHub's cache."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from neon_elt import cli
from neon_simulator import Simulator
from runs import checkout, file_digest, free_port, last_line, scheduler_env, unreachable_url
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

WORKFLOW = REPO / ".github" / "workflows" / "neon-elt.yml"


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

    def run(self, workspace: Path, **changed: str) -> list[StepResult]:
        """One run of the workflow in `workspace`, the runner's environment `changed` for it."""
        self.run_id += 1
        flow = workflow()
        base = {**self.env, **changed}
        env = {**base, **{k: self.expand(str(v), base) for k, v in flow["env"].items()}}
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


@pytest.fixture(scope="module")
def scheduled(tiny_account, tmp_path_factory) -> SimpleNamespace:
    """The workflow's runner against the simulator, and the folder that plays GitHub's cache,
    which outlives the runs."""
    folder = tmp_path_factory.mktemp("workflow")
    cache = folder / "cache"
    cache.mkdir()
    with Simulator(tiny_account) as simulator:
        yield SimpleNamespace(
            folder=folder,
            cache=cache,
            runner=Runner(cache, scheduler_env(folder / "unused.duckdb", simulator)),
        )


@pytest.fixture(scope="module")
def first_run(scheduled) -> list[StepResult]:
    return scheduled.runner.run(checkout(scheduled.folder / "run1" / "neon-elt"))


@pytest.fixture(scope="module")
def second_run(scheduled, first_run) -> list[StepResult]:
    """The next scheduled run: a new runner's checkout, the cache kept."""
    return scheduled.runner.run(checkout(scheduled.folder / "run2" / "neon-elt"))


def test_the_workflow_s_first_run_is_a_full_run_and_every_step_passes(first_run):
    assert all(step.code == 0 for step in first_run if step.ran), [
        (s.name, s.output[-2000:]) for s in first_run
    ]
    assert [step.name for step in first_run if not step.ran] == ["Say why the run failed"]
    assert "full run (first run)" in next(s.output for s in first_run if s.name == "Extract and build")


def test_the_next_run_restores_the_warehouse_from_the_cache_and_reads_incrementally(scheduled, second_run):
    assert all(step.code == 0 for step in second_run if step.ran), [
        (s.name, s.output[-2000:]) for s in second_run
    ]
    assert "incremental run" in next(s.output for s in second_run if s.name == "Extract and build")
    kept = workflow()["env"]["NEON_DUCKDB_PATH"]  # the file the cache steps carry
    assert len([p for p in scheduled.cache.iterdir() if (p / kept).is_file()]) == 2


def test_a_failed_run_says_why_in_one_line_and_saves_or_publishes_nothing(scheduled, second_run):
    kept = workflow()["env"]["NEON_DUCKDB_PATH"]
    saved = {p.name: file_digest(p / kept) for p in scheduled.cache.iterdir()}
    third = scheduled.runner.run(
        checkout(scheduled.folder / "run3" / "neon-elt"), NEON_API_BASE_URL=unreachable_url()
    )
    by_name = {step.name: step for step in third}
    extract = by_name["Extract and build"]
    assert extract.code == 1  # the runner's own code reaches the step, through `| tee`
    assert not any(step.ran for step in third[third.index(extract) + 1 : -1])  # nothing saved or published
    cause = last_line(extract.output)
    assert cause.startswith("neon-elt: ") and "cannot connect" in cause
    assert by_name["Say why the run failed"].output.strip() == f"::error title=neon-elt failed::{cause}"
    assert {p.name: file_digest(p / kept) for p in scheduled.cache.iterdir()} == saved


def test_make_takes_the_target_from_the_environment_as_the_runner_does(tmp_path):
    """The workflow's PostgreSQL variant sets NEON_ELT_TARGET once, for the runner and for
    `make report` alike: the Makefile must not set it back to duckdb."""
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
