"""The habits users bring from dltHub's "Neon Python API" page work here (issue 15):

- `dlt.pipeline("neon_api_pipeline").dataset().projects.df()`, unchanged, reads the published
  warehouse from the folder it was published in (the repository root);
- `python neon_api_pipeline.py` is `make elt`: same run, summary and exit codes;

A folder stands in for the repository root: the repository's `.dlt/config.toml` in it, and the
warehouse under its default name. Each child process gets a dlt data folder of its own, so that
whether dlt kept local state of the pipeline is the test's choice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO
from expected import query
from neon_elt import config
from neon_elt.warehouse import run_lock
from neon_simulator import Simulator
from runs import cli_env, expected_table_counts, run_cli

PAGE_SNIPPET = """
import dlt
dataset = dlt.pipeline("neon_api_pipeline").dataset()
print(len(dataset.projects.df()), len(dataset.project_branches.df()))
"""


def repo_root_like(folder: Path) -> Path:
    """A folder set up as the repository root is for dlt: its .dlt/config.toml (no secrets)."""
    (folder / ".dlt").mkdir(parents=True)
    shutil.copyfile(REPO / ".dlt" / "config.toml", folder / ".dlt" / "config.toml")
    return folder


def child_env(dlt_dir: Path, **extra: str) -> dict[str, str]:
    """A user's environment: none of our settings, dlt's data (its local pipeline state) in
    `dlt_dir`, marimo's config and cache in the test's folders too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "SOURCES__", "DESTINATION__"))}
    env.update(
        DLT_DATA_DIR=str(dlt_dir),
        RUNTIME__DLTHUB_TELEMETRY="false",
        XDG_CONFIG_HOME=str(dlt_dir / "xdg-config"),
        XDG_CACHE_HOME=str(dlt_dir / "xdg-cache"),
        XDG_STATE_HOME=str(dlt_dir / "xdg-state"),
    )
    env.update(extra)
    return env


def run_page_snippet(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PAGE_SNIPPET], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def account_counts(account) -> tuple[int, int]:
    projects = account.all_projects()
    return len(projects), sum(len(account.branches(p["id"])) for p in projects)


# ------------------------------------------------------------------ 1. the page's query snippet


def test_the_default_warehouse_is_the_file_dlt_opens_for_the_pipeline():
    from dlt.destinations.impl.duckdb.configuration import DUCK_DB_NAME_PAT

    assert config.DEFAULT_WAREHOUSE == DUCK_DB_NAME_PAT % "neon_api_pipeline" == "neon_api_pipeline.duckdb"


def test_the_page_s_snippet_reads_the_raw_tables_where_dlt_kept_no_state(
    demo_account, demo_warehouse, tmp_path
):
    """The hardest case: dlt has no local state of the pipeline (another machine, a new user);
    .dlt/config.toml names its destination and dataset."""
    root = repo_root_like(tmp_path / "root")
    shutil.copyfile(demo_warehouse, root / config.DEFAULT_WAREHOUSE)
    read = run_page_snippet(root, child_env(tmp_path / "no-state"))
    assert read.returncode == 0, read.stderr[-2000:]
    assert tuple(map(int, read.stdout.split())) == account_counts(demo_account)


# ------------------------------------------------------------ a warehouse under its old name


def warehouse_file(path: Path, loaded: bool) -> Path:
    """A DuckDB file; `loaded`: with the raw dataset's `_dlt_loads`, as any run leaves it."""
    connection = duckdb.connect(str(path))
    if loaded:
        connection.execute(f"create schema {config.DATASET_NAME}")
        connection.execute(f"create table {config.DATASET_NAME}._dlt_loads (load_id varchar)")
    connection.close()
    return path


OLD, NEW = config.OLD_DEFAULT_WAREHOUSE, config.DEFAULT_WAREHOUSE


@pytest.mark.parametrize(
    ("files", "used"),
    [
        ({}, NEW),  # a fresh clone
        ({NEW: True}, NEW),
        ({OLD: True}, OLD),  # an upgrade: the old warehouse stays in use until moved
        ({OLD: True, NEW: False}, OLD),  # an empty file beside it does not replace it
        ({OLD: True, NEW: True}, NEW),  # moved (or both loaded): the new name wins
    ],
    ids=["fresh", "new", "old-only", "old-and-empty-new", "both"],
)
def test_the_old_name_stays_in_use_with_a_notice_until_moved(files, used, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("NEON_DUCKDB_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    for name, loaded in files.items():
        warehouse_file(tmp_path / name, loaded)
    assert config.warehouse_path() == tmp_path / used
    notice = capsys.readouterr().err.strip().splitlines()
    if used == OLD:
        assert len(notice) == 1 and f"mv {OLD} {NEW} && make transform" in notice[0], notice
    else:
        assert notice == []


def test_neon_duckdb_path_wins_over_both_names(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    warehouse_file(tmp_path / OLD, loaded=True)
    monkeypatch.setenv("NEON_DUCKDB_PATH", str(tmp_path / "elsewhere.duckdb"))
    assert config.warehouse_path() == tmp_path / "elsewhere.duckdb"
    assert capsys.readouterr().err == ""


def test_the_empty_file_the_snippet_leaves_does_not_take_over_from_the_old_warehouse(
    demo_warehouse, tmp_path, monkeypatch, capsys
):
    """The page's snippet, tried before the move, finds no warehouse under the new name: dlt
    creates an empty file there. The next scheduled run must still use the old warehouse."""
    root = repo_root_like(tmp_path / "root")
    shutil.copyfile(demo_warehouse, root / OLD)
    tried = run_page_snippet(root, child_env(tmp_path / "dlt"))
    assert tried.returncode != 0 and (root / NEW).is_file()
    monkeypatch.delenv("NEON_DUCKDB_PATH", raising=False)
    monkeypatch.chdir(root)
    assert config.warehouse_path() == root / OLD
    assert "its old name" in capsys.readouterr().err


# ----------------------------------------------------------- 3. python neon_api_pipeline.py


def pipeline_py(*args: str, env: dict[str, str], cwd: Path, python: str = sys.executable):
    return subprocess.run(
        [python, str(REPO / "neon_api_pipeline.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def summary_rows(stdout: str) -> dict[str, int]:
    """The extract summary's rows per table."""
    block = stdout.split("Extract summary", 1)[1]
    return {t: int(n.replace(",", "")) for t, n in re.findall(r"^  (\w+)\s+([\d,]+) rows$", block, re.M)}


def test_python_neon_api_pipeline_py_runs_make_elt_and_the_page_s_snippet_reads_it(demo_account, tmp_path):
    root = repo_root_like(tmp_path / "root")
    with Simulator(demo_account) as simulator:
        env = cli_env(root / "unused.duckdb", simulator, DLT_DATA_DIR=str(tmp_path / "dlt"))
        del env["NEON_DUCKDB_PATH"]  # the default, as a user has it
        run = pipeline_py(env=env, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    warehouse = root / config.DEFAULT_WAREHOUSE
    # dlt's load info, the runner's summary with what the simulator served, dbt's build, the publish
    assert "is LOADED and contains no failed jobs" in run.stdout
    assert summary_rows(run.stdout) == expected_table_counts(demo_account)
    assert "Completed successfully" in run.stdout
    assert f"Warehouse published: {warehouse}" in run.stdout
    projects, branches = account_counts(demo_account)
    assert query(warehouse, "select count(*) from marts.projects")[0][0] == projects
    assert query(warehouse, "select count(*) from marts.project_branch_inventory")[0][0] == branches
    # then the page's next step, with the local state the run left
    read = run_page_snippet(root, child_env(tmp_path / "dlt"))
    assert read.returncode == 0, read.stderr[-2000:]
    assert tuple(map(int, read.stdout.split())) == (projects, branches)


@pytest.mark.parametrize("failure", ["no key", "another run", "wrong key"])
def test_python_neon_api_pipeline_py_fails_as_make_elt_does(failure, demo_account, tmp_path):
    """The same exit code and the same one line as `neon-elt elt`, which `make elt` runs."""
    root = repo_root_like(tmp_path / "root")
    warehouse = root / config.DEFAULT_WAREHOUSE
    with Simulator(demo_account) as simulator:
        env = cli_env(warehouse, simulator, DLT_DATA_DIR=str(tmp_path / "dlt"))
        if failure == "no key":
            del env["NEON_API_KEY"]
        if failure == "wrong key":
            env["NEON_API_KEY"] = "napi_not_the_key"
        if failure == "another run":
            with run_lock(warehouse):
                ours, theirs = pipeline_py(env=env, cwd=root), run_cli("elt", env=env, cwd=root)
        else:
            ours, theirs = pipeline_py(env=env, cwd=root), run_cli("elt", env=env, cwd=root)
    expected_code = {"no key": 2, "another run": 3, "wrong key": 1}[failure]
    assert (ours.returncode, theirs.returncode) == (expected_code, expected_code)
    last_line = ours.stderr.strip().splitlines()[-1]
    assert last_line.startswith("neon-elt: ") and last_line == theirs.stderr.strip().splitlines()[-1]
    assert not warehouse.exists()


def test_a_python_outside_the_environment_hands_the_run_to_the_environment_s(tmp_path):
    """`python neon_api_pipeline.py` with the system's Python: it runs again with .venv's."""
    outside = Path(sys.base_prefix) / "bin" / "python3"
    if not outside.exists() or Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("needs the interpreter the environment was made from, and the repository's .venv")
    assert subprocess.run([str(outside), "-c", "import neon_elt"], capture_output=True).returncode != 0
    root = repo_root_like(tmp_path / "root")
    env = cli_env(root / config.DEFAULT_WAREHOUSE, None, DLT_DATA_DIR=str(tmp_path / "dlt"))
    result = pipeline_py(env=env, cwd=root, python=str(outside))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("neon-elt: no Neon API key"), result.stderr
