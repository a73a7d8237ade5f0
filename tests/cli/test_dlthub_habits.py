"""The habits users bring from dltHub's "Neon Python API" page work here:

- `dlt.pipeline("neon_api_pipeline").dataset().projects.df()`, unchanged, reads the published
  warehouse from the folder it was published in (the repository root);
- `python neon_api_pipeline.py` is `make elt`: same run, summary and exit codes;
- `make dashboard` serves dlt's dashboard (`dlt pipeline neon_api_pipeline show`), whose data
  browser, looked at in headless Chromium, shows the warehouse's raw tables;
- `make notebook`'s marimo notebook runs headless, every cell without error, over the marts.

A folder stands in for the repository root: the repository's `.dlt/config.toml` in it, and the
warehouse under its default name. Each child process gets a dlt data folder of its own, so that
whether dlt kept local state of the pipeline is the test's choice.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from expected import query, unbilled_org_names
from neon_elt import config, marimo_apps
from neon_elt.warehouse import run_lock
from neon_simulator import Simulator
from runs import cli_env, expected_table_counts, file_digest, free_port, run_cli
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

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
    return {t: int(n.replace(",", "")) for t, n in re.findall(r"^  (\w+)\s+([\d,]+) rows?$", block, re.M)}


def test_python_neon_api_pipeline_py_runs_make_elt_and_the_page_s_snippet_reads_it(demo_account, tmp_path):
    root = repo_root_like(tmp_path / "root")
    with Simulator(demo_account) as simulator:
        env = cli_env(root / "unused.duckdb", simulator, DLT_DATA_DIR=str(tmp_path / "dlt"))
        del env["NEON_DUCKDB_PATH"]  # the default, as a user has it
        started = datetime.now(UTC)  # the run's clock
        run = pipeline_py(env=env, cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    warehouse = root / config.DEFAULT_WAREHOUSE
    # dlt's load info, the runner's summary with what the simulator served, dbt's build, the publish
    assert "is LOADED and contains no failed jobs" in run.stdout
    # where the data is stored: the warehouse readers open, not the working copy it was built in
    assert f"destination used duckdb:///{warehouse} location" in run.stdout, run.stdout[:800]
    assert summary_rows(run.stdout) == expected_table_counts(demo_account, started)
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
    expected_code = {"no key": 2, "another run": 3, "wrong key": 2}[failure]
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


# ------------------------------------------------------------------------ 2. dlt's dashboard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLAYWRIGHT_VERSION = "1.65.1"  # playwright-core, npm: drives Debian's Chromium, downloads no browser
PLAYWRIGHT_DIR = REPO / ".tools" / "playwright"


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90) -> str:
    """The page at `url`, once the server answers; cookies kept, as a browser keeps marimo's
    session after its access token."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server ended with exit {process.returncode}")
        try:
            with opener.open(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"nothing served {url} within {timeout:.0f} s")


def serve(command: list[str], env: dict[str, str], cwd: Path):
    """Start a `neon-elt` server command; the process, with its output going to a file."""
    log = (cwd / "server.log").open("w")
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    return process, log


def stop(process: subprocess.Popen, log) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def dashboard(demo_warehouse, tmp_path_factory):
    """`neon-elt dashboard` (make dashboard) on the demo warehouse, from a folder of its own and
    with no local state of the pipeline: (url, its folder, its dlt data folder, the warehouse's
    digest before)."""
    folder = repo_root_like(tmp_path_factory.mktemp("dashboard") / "root")
    dlt_dir = folder.parent / "dlt"
    port = free_port()
    env = child_env(dlt_dir, NEON_DUCKDB_PATH=str(demo_warehouse))
    before = file_digest(demo_warehouse)
    neon_elt = str(Path(sys.executable).with_name("neon-elt"))
    process, log = serve([neon_elt, "dashboard", "--port", str(port)], env, folder)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, process)
        yield url, folder, dlt_dir, before
    finally:
        stop(process, log)


def test_make_dashboard_serves_dlt_s_dashboard_of_the_pipeline(dashboard, demo_warehouse):
    url, folder, dlt_dir, _ = dashboard
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()
    assert response.status == 200 and "dlt_dashboard.py" in page  # marimo's page of dlt's app
    log = (folder / "server.log").read_text()
    assert f"dlt's dashboard of neon_api_pipeline on {url.rstrip('/')}, {demo_warehouse} read-only" in log
    # where dlt kept no state of the pipeline, the dashboard's comes from the warehouse
    state = json.loads((dlt_dir / "pipelines" / "neon_api_pipeline" / "state.json").read_text())
    assert state["dataset_name"] == "neon_api_data" and state["pipeline_name"] == "neon_api_pipeline"


@pytest.fixture(scope="session")
def playwright() -> Path:
    """playwright-core in .tools/playwright (git-ignored), installed with npm on first use, to
    drive Debian's Chromium. Without npm or Chromium this skips on a laptop and fails in CI."""
    missing = [name for name, found in (("npm", shutil.which("npm")), ("chromium", CHROMIUM)) if not found]
    if missing:
        reason = f"{' and '.join(missing)} not installed (make system-deps installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    if not (PLAYWRIGHT_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        installed = subprocess.run(
            [
                shutil.which("npm"),
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(PLAYWRIGHT_DIR),
                f"playwright-core@{PLAYWRIGHT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, installed.stderr
    return PLAYWRIGHT_DIR


def test_its_data_browser_shows_every_raw_table_as_the_warehouse_holds_it(
    dashboard, demo_warehouse, playwright, tmp_path
):
    """In headless Chromium, as a user: "Load row counts" lists every raw table with its rows,
    and "Run Query" on the selected one returns them. The warehouse stays byte for byte as it was."""
    url, *_, before = dashboard
    look = subprocess.run(
        [
            "node",
            str(Path(__file__).with_name("dashboard_look.js")),
            str(playwright),
            CHROMIUM,
            url,
            str(tmp_path / "look.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert look.returncode == 0, look.stderr[-3000:]
    seen = json.loads(look.stdout.strip().splitlines()[-1])
    tables = [
        name
        for (name,) in query(
            demo_warehouse,
            "select table_name from information_schema.tables where table_schema = 'neon_api_data' "
            "and table_name not like '\\_%' escape '\\'",
        )
    ]
    counts = {
        name: query(demo_warehouse, f"select count(*) from neon_api_data.{name}")[0][0] for name in tables
    }
    assert seen["row_counts"] == counts
    selected = re.search(r'FROM "(\w+)"', seen["query"]["sql"]).group(1)
    limit = re.search(r"LIMIT (\d+)", seen["query"]["sql"], re.IGNORECASE)  # the browser shows a page
    shown = min(counts[selected], int(limit.group(1))) if limit else counts[selected]
    assert seen["query"]["result"].startswith(f"{shown:,} rows")
    assert file_digest(demo_warehouse) == before


def test_without_the_group_the_dashboard_says_how_to_install_it(monkeypatch, demo_warehouse, capsys):
    from neon_elt import cli

    real = marimo_apps.importlib.util.find_spec
    monkeypatch.setattr(
        marimo_apps.importlib.util, "find_spec", lambda name, *a: None if name == "marimo" else real(name, *a)
    )
    monkeypatch.setenv("NEON_DUCKDB_PATH", str(demo_warehouse))
    for command in ("dashboard", "notebook"):
        assert cli.main([command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "`make dashboard`" in err[0] and "marimo not installed" in err[0], err


def test_a_port_in_use_or_no_warehouse_is_one_line_and_exit_2(monkeypatch, tmp_path, demo_warehouse, capsys):
    from neon_elt import cli

    monkeypatch.setenv("NEON_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    assert cli.main(["dashboard", "--port", str(free_port())]) == 2
    assert "no warehouse at" in capsys.readouterr().err
    monkeypatch.setenv("NEON_DUCKDB_PATH", str(demo_warehouse))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert cli.main(["notebook", "--port", str(busy.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot serve on 127.0.0.1" in err[0] and "make notebook PORT=" in err[0]


def test_the_notebook_gets_no_secret_of_ours(monkeypatch, demo_warehouse):
    """Every secret kept from dbt is kept from marimo: the notebook runs any code typed in it."""
    for name in config.SECRET_ENV:
        monkeypatch.setenv(name, f"secret-{name.lower()}")
    monkeypatch.setenv("NEON_DUCKDB_PATH", str(demo_warehouse))
    app = marimo_apps.notebook(free_port())
    assert config.SECRET_ENV and not set(config.SECRET_ENV) & set(app.env)
    assert not any(value.startswith("secret-") for value in app.env.values())


# ------------------------------------------------------------------ 4. the analysts' notebook


def exported_cells(page: str) -> dict[str, dict]:
    """Per cell of the notebook that `marimo export html` ran: its code, outputs and console."""
    cells = {}
    for key in ("notebook", "session"):
        found = re.search(rf'^\s*"{key}": (\{{.*\}}),$', page, re.M)
        assert found, f"no {key} in the exported page"
        for cell in json.loads(found.group(1))["cells"]:
            cells.setdefault(cell["id"], {}).update(cell)
    return cells


def test_the_notebook_runs_headless_and_every_cell_succeeds(demo_account, demo_warehouse, tmp_path):
    copy = tmp_path / "neon_estate.py"  # marimo keeps session snapshots beside the notebook it runs
    shutil.copyfile(marimo_apps.NOTEBOOK, copy)
    before = file_digest(demo_warehouse)
    exported = subprocess.run(
        [marimo_apps.marimo(), "export", "html", str(copy), "-o", str(tmp_path / "notebook.html")],
        env=child_env(tmp_path / "dlt", NEON_DUCKDB_PATH=str(demo_warehouse), MARIMO_SKIP_UPDATE_CHECK="1"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]  # marimo exits 1 when a cell failed
    cells = exported_cells((tmp_path / "notebook.html").read_text())
    assert len(cells) >= 15
    for cell_id, cell in cells.items():
        assert "outputs" in cell, f"cell {cell_id} did not run:\n{cell.get('code')}"
        errors = [output for output in cell["outputs"] if output.get("type") == "error"]
        stderr = [line for line in cell.get("console", []) if line.get("name") == "stderr"]
        assert not errors and not stderr, f"cell {cell_id}:\n{cell['code']}\n{errors or stderr}"
    # the headline figures, as the simulator served them
    shown = "".join(o["data"].get("text/html", "") for c in cells.values() for o in c["outputs"])
    stats = {
        html.unescape(label): html.unescape(value)
        for value, label in re.findall(r"data-value='([^']*)' data-label='([^']*)'", shown)
    }
    projects, branches = account_counts(demo_account)
    endpoints = sum(len(demo_account.endpoints(p["id"])) for p in demo_account.all_projects())
    assert stats['"projects"'] == f'"{projects:,}"'
    assert stats['"branches"'] == f'"{branches:,}"'
    assert stats['"computes"'] == f'"{endpoints:,}"'
    # beside the bills, the organizations without one, by name (the report's and summary's words)
    unbilled = unbilled_org_names(demo_account)
    assert unbilled and f"No consumption history for {', '.join(unbilled)}" in html.unescape(shown)
    assert file_digest(demo_warehouse) == before  # opened read-only


def test_make_notebook_serves_marimo_s_editor_on_the_notebook(demo_warehouse, tmp_path):
    port = free_port()
    env = child_env(tmp_path / "dlt", NEON_DUCKDB_PATH=str(demo_warehouse))
    neon_elt = str(Path(sys.executable).with_name("neon-elt"))
    process, log = serve([neon_elt, "notebook", "--port", str(port)], env, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (token := re.search(r"access_token=([\w-]+)", (tmp_path / "server.log").read_text())):
            assert time.monotonic() < deadline and process.poll() is None, (
                tmp_path / "server.log"
            ).read_text()
            time.sleep(0.3)
        page = wait_for_http(f"http://127.0.0.1:{port}/?access_token={token.group(1)}", process)
        assert "neon_estate.py" in page
    finally:
        stop(process, log)
