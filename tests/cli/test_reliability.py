"""Unattended runs: API faults, bad input, reruns, interruptions, analysts reading during a load,
and secrets. Commands run as a scheduler runs them (`neon-elt` in a child process) wherever the
exit code and the one-line message matter."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from expected import ACCESS_RELATIONS, marts, query, relations_holding
from neon_api_source.access import hash_email
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import cli_env, extract, file_digest, files_holding, free_port, last_line, run_cli
from suite import REPO

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


@pytest.fixture
def published(demo_warehouse, tmp_path) -> Path:
    """A copy of the session's demo warehouse to run against (same account, same origin)."""
    path = tmp_path / "neon_api.duckdb"
    shutil.copyfile(demo_warehouse, path)
    return path


# ---------------------------------------------------------------------------------------- faults


def test_faults_at_15_percent_leave_the_marts_equal_to_a_clean_run(demo_account, demo_warehouse, tmp_path):
    # 13 % mixed (5xx, 429, dropped connections, truncated bodies) and 2 % answers slower than the
    # client's read timeout: 15 % of all requests fail, every kind at least once
    faults = dataclasses.replace(Faults.mixed(0.13, seed=3), slow_rate=0.02, slow_seconds=1.5)
    with Simulator(demo_account, faults=faults) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator, transform=True, read_timeout=1.0)
        injected = simulator.stats.faults
    assert sum(injected.values()) >= 0.1 * result.stats.total_requests
    assert {kind for kind, n in injected.items() if n} >= {"error", "burst_429", "drop", "truncate", "slow"}
    assert result.stats.retries >= sum(injected.values())
    assert result.stats.throttled >= injected["burst_429"]
    assert marts(tmp_path / "neon_api.duckdb") == marts(demo_warehouse)


def test_a_fault_that_outlasts_the_retries_fails_cleanly_and_the_next_run_recovers(
    demo_account, published, tmp_path
):
    before = file_digest(published)
    route = "/projects/{project_id}/branches/{branch_id}/roles"
    with Simulator(demo_account, faults=Faults(persistent={route: 503})) as simulator:
        # a full refresh reads every branch's roles (an incremental run reads only the changed ones)
        failed = run_cli("elt", "--full-refresh", env=cli_env(published, simulator), cwd=tmp_path)
    assert failed.returncode == 1
    message = last_line(failed.stderr)
    assert message.startswith("neon-elt: ") and route in message and "503" in message
    assert file_digest(published) == before
    assert query(published, "select count(*) from marts.project_branch_inventory")[0][0] > 0

    with Simulator(demo_account) as simulator:
        recovered = run_cli("elt", env=cli_env(published, simulator), cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    assert "skipped: consumption" in recovered.stdout  # the 403 of a plan without it: a warning


# ------------------------------------------------------------------------------------ bad input


def test_a_wrong_key_fails_at_once_and_says_where_the_key_came_from(demo_account, published, tmp_path):
    before = file_digest(published)
    with Simulator(demo_account) as simulator:
        started = time.monotonic()
        result = run_cli("elt", env=cli_env(published, simulator, api_key="napi_not_the_key"), cwd=tmp_path)
        elapsed = time.monotonic() - started
        requests = simulator.stats.total
    assert result.returncode == 2  # the key: someone has to fix it (README's exit codes)
    message = last_line(result.stderr)
    assert "401" in message and "NEON_API_KEY environment variable" in message
    assert requests == 1  # no retries
    assert elapsed < 15
    assert file_digest(published) == before


@pytest.mark.parametrize(
    "case",
    ["unreachable", "wrong path", "not json", "directory", "unwritable", "malformed secrets"],
)
def test_bad_input_gets_one_clear_line_a_non_zero_exit_and_no_writes(case, demo_account, published, tmp_path):
    before = file_digest(published)
    cwd = tmp_path / "run"
    cwd.mkdir()
    faults = Faults(not_json_rate=1.0) if case == "not json" else None
    with Simulator(demo_account, faults=faults) as simulator:
        env = cli_env(published, simulator)
        expected = {
            "unreachable": "cannot connect",
            "wrong path": "404",
            "not json": "not valid JSON",
            "directory": "is a directory",
            "unwritable": "cannot write in",
            "malformed secrets": "cannot read .dlt/secrets.toml",
        }[case]
        if case == "unreachable":
            env["NEON_API_BASE_URL"] = f"http://127.0.0.1:{free_port()}/api/v2"
        elif case == "wrong path":
            env["NEON_API_BASE_URL"] = simulator.base_url.removesuffix("/api/v2") + "/v2"
        elif case == "directory":
            env["NEON_DUCKDB_PATH"] = str(tmp_path)
        elif case == "unwritable":
            env["NEON_DUCKDB_PATH"] = "/proc/neon_api.duckdb"
        elif case == "malformed secrets":
            del env["NEON_API_KEY"]
            (cwd / ".dlt").mkdir()
            (cwd / ".dlt" / "secrets.toml").write_text('[sources.neon_api_source\napi_key = "napi_')
        result = run_cli("elt", env=env, cwd=cwd, timeout=120)
    assert result.returncode != 0
    message = last_line(result.stderr)
    assert message.startswith("neon-elt: ") and expected in message, result.stderr
    assert file_digest(published) == before
    assert not list(tmp_path.glob(".*.building"))


# ---------------------------------------------------------------------------------------- reruns


@pytest.fixture(scope="module")
def in_a_row(demo_warehouse, tmp_path_factory) -> SimpleNamespace:
    """Scheduled runs one after another on a copy of the session's warehouse (its first run):
    the copy, its folder, and its marts after the session's run."""
    folder = tmp_path_factory.mktemp("in-a-row")
    warehouse = folder / demo_warehouse.name
    shutil.copyfile(demo_warehouse, warehouse)
    return SimpleNamespace(warehouse=warehouse, folder=folder, first=marts(warehouse))


def _next_run(in_a_row: SimpleNamespace, account: Account) -> dict:
    with Simulator(account) as simulator:
        result = run_cli("elt", env=cli_env(in_a_row.warehouse, simulator), cwd=in_a_row.folder)
    assert result.returncode == 0, result.stderr
    return marts(in_a_row.warehouse)


@pytest.fixture(scope="module")
def second(in_a_row, demo_account) -> dict:
    return _next_run(in_a_row, demo_account)


@pytest.fixture(scope="module")
def third(in_a_row, second, demo_account) -> dict:
    return _next_run(in_a_row, demo_account)


def test_the_run_after_a_full_run_gives_identical_marts(in_a_row, second):
    assert second == in_a_row.first


def test_the_run_after_that_gives_identical_marts_and_leaves_nothing_beside_the_warehouse(
    in_a_row, second, third
):
    assert third == second
    assert sorted(p.name for p in in_a_row.folder.iterdir()) == [in_a_row.warehouse.name]  # no lock, no copy


def test_a_deleted_project_leaves_the_inventory_and_its_branches_stay_in_the_history(published, tmp_path):
    # after the session's run (published, its copy), a project is deleted; the account is the
    # demo's, generated anew, since this test changes it
    account = Account.generate(PRESETS["demo"])
    gone = account.all_projects()[0]["id"]
    gone_branches = {b["id"] for b in account.branches(gone)}
    account.delete_project(gone)
    with Simulator(account) as simulator:
        result = run_cli("elt", env=cli_env(published, simulator), cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    inventory = {r[0] for r in query(published, "select project_id from marts.project_branch_inventory")}
    assert gone not in inventory
    assert inventory == {p["id"] for p in account.all_projects()}
    # the history keeps the project's branches, marked as deleted
    history = query(
        published,
        "select distinct branch_id from marts.branch_history where project_id = ? and is_deleted",
        [gone],
    )
    assert {r[0] for r in history} == gone_branches


def _children_running(process: subprocess.Popen, name: str) -> bool:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for child in children:
        try:
            if name in " ".join(child.cmdline()):
                return True
        except psutil.Error:  # a child that just ended (gone, or a zombie not yet reaped)
            continue
    return False


@pytest.mark.parametrize("moment", ["mid-extract", "mid-dbt"])
def test_a_killed_run_leaves_the_warehouse_as_it_was(moment, demo_account, published, tmp_path):
    before = file_digest(published)
    latency = 0.3 if moment == "mid-extract" else 0.0
    with Simulator(demo_account, latency=latency) as simulator:
        dbt_target = tmp_path / "dbt-target"
        env = cli_env(published, simulator, DBT_TARGET_PATH=str(dbt_target))
        executable = Path(sys.executable).with_name("neon-elt")
        process = subprocess.Popen(
            [str(executable), "elt"],
            env=env,
            cwd=tmp_path,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        if moment == "mid-extract":
            while simulator.stats.total < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        else:
            # dbt is building once it has run a node: it writes the node's SQL under target/run
            while time.monotonic() < deadline and not (
                _children_running(process, "dbt") and (dbt_target / "run").exists()
            ):
                time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be interrupted"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert file_digest(published) == before

        simulator.latency = 0.0  # the slow answers only kept the run busy until it was killed
        result = run_cli("elt", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob(".*.building"))


# --------------------------------------------------------------------------- analysts during loads

READER = """
import sys, duckdb
path = sys.argv[1]
def count(c):
    return c.execute("select count(*) from marts.project_branch_inventory").fetchone()[0]
held = duckdb.connect(path, read_only=True)
print(count(held), flush=True)
sys.stdin.readline()                       # the load happens meanwhile
print(count(held), flush=True)             # the open session still reads the old, complete data
held.close()                               # DuckDB shares one instance per file and process: close
fresh = duckdb.connect(path, read_only=True)
print(count(fresh), flush=True)            # then reconnect, and read the new data
"""

CONSISTENT = """
select
    (select count(*) from marts.project_branch_inventory),
    (select count(*) from neon_api_data.project_branches b
     join neon_api_data.projects p on p.id = b.project_id
     where b._dlt_valid_to is null and p._dlt_valid_to is null)
"""


def test_readers_and_docs_keep_working_while_a_load_publishes(demo_account, published, tmp_path):
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(published)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    old_count = [int(r.stdout.readline()) for r in readers][0]

    port = free_port()
    docs_env = cli_env(published, None, DBT_TARGET_PATH=str(tmp_path / "docs-target"))
    docs = subprocess.Popen(
        [str(Path(sys.executable).with_name("neon-elt")), "docs", "--port", str(port)],
        env=docs_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/", docs)
        # the account changes between the two loads, so old and new data can be told apart
        account = Account.generate(PRESETS["demo"])  # the same account as demo_account, to change
        gone = account.all_projects()[0]["id"]
        gone_branches = len(account.branches(gone))
        account.delete_project(gone)
        with Simulator(account) as simulator:
            load = subprocess.Popen(
                [str(Path(sys.executable).with_name("neon-elt")), "elt"],
                env=cli_env(published, simulator),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            observations = 0
            while load.poll() is None:
                marts_rows, raw_rows = query(published, CONSISTENT)[0]
                assert marts_rows == raw_rows  # never new raw data with old marts, or half a build
                for page in ("", "manifest.json", "catalog.json"):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{page}", timeout=10) as response:
                        assert response.status == 200
                observations += 1
                time.sleep(0.2)
            stdout, stderr = load.communicate()
        assert load.returncode == 0, stderr
        assert observations > 5
    finally:
        os.killpg(docs.pid, signal.SIGTERM)
        docs.wait()

    new_count = query(published, "select count(*) from marts.project_branch_inventory")[0][0]
    for reader in readers:
        held, fresh = reader.communicate("go\n")[0].split()
        assert int(held) == old_count and int(fresh) == new_count
    assert gone_branches and new_count == old_count - gone_branches


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "dbt docs serve exited"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


# --------------------------------------------------------------------------------------- secrets


def _run_and_report(account: Account, folder: Path, **env_extra: str) -> tuple[Path, str, list[Path]]:
    """`neon-elt elt` then `neon-elt report`, as a scheduler runs them: (the warehouse, everything
    they printed, the folders they wrote besides it, the report included)."""
    warehouse = folder / "neon_api.duckdb"
    written = [folder / "dlt", folder / "dbt-target", folder / "dbt-logs", folder / "reports"]
    with Simulator(account) as simulator:
        env = cli_env(
            warehouse,
            simulator,
            DLT_DATA_DIR=str(written[0]),
            DBT_TARGET_PATH=str(written[1]),
            DBT_LOG_PATH=str(written[2]),
            **env_extra,
        )
        result = run_cli("elt", env=env, cwd=folder)
        assert result.returncode == 0, result.stderr
        report = run_cli("report", "--output", str(written[3] / "report.html"), env=env, cwd=folder)
        assert report.returncode == 0, report.stderr
    assert all(path.exists() for path in written)
    return warehouse, result.stdout + result.stderr + report.stdout + report.stderr, written


def test_no_file_a_run_produces_holds_the_key_or_a_password_and_emails_stay_in_the_access_tables(tmp_path):
    account = Account.generate(dataclasses.replace(PRESETS["tiny"], serve_secrets=True))
    secrets = account.served_secrets() | {account.personal_api_key}
    emails = account.served_emails()
    assert len(secrets) > 1 and any(len(s) == 64 for s in secrets)  # passwords and API key tokens
    assert emails
    warehouse, printed, written = _run_and_report(account, tmp_path)

    leaks = [f"stdout/stderr: {s}" for s in secrets | emails if s in printed]
    leaks += files_holding(secrets | emails, *written)
    # every table and view read as text, and the file's bytes (DuckDB compresses strings on disk)
    leaks += [f"{warehouse}: {schema}.{table}" for schema, table in relations_holding(warehouse, secrets)]
    leaks += files_holding(secrets, warehouse)
    assert not leaks
    assert relations_holding(warehouse, emails) == ACCESS_RELATIONS


def test_with_hash_emails_no_address_and_no_salt_lands_anywhere(tmp_path):
    """For a warehouse shared beyond admins: every address is an HMAC of it, in the warehouse, the
    pipeline's files, dbt's, the output and the report; the salt is nowhere."""
    account = Account.generate(PRESETS["tiny"])
    salt = "a-long-random-salt-for-this-test"
    warehouse, printed, written = _run_and_report(
        account,
        tmp_path,
        SOURCES__NEON_API_SOURCE__HASH_EMAILS="true",
        SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT=salt,
    )
    needles = account.served_emails() | {salt}
    assert not [s for s in needles if s in printed]
    assert not files_holding(needles, *written)
    assert relations_holding(warehouse, needles) == set()
    hashes = {hash_email(e, salt) for e in account.served_emails()}
    assert relations_holding(warehouse, hashes) == ACCESS_RELATIONS


def test_a_warehouse_never_mixes_two_apis(demo_account, tmp_path):
    warehouse = tmp_path / "neon_api.duckdb"
    with Simulator(demo_account) as simulator:
        first = run_cli("extract", env=cli_env(warehouse, simulator), cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        before = file_digest(warehouse)
        other = cli_env(
            warehouse, simulator, NEON_API_BASE_URL=simulator.base_url.replace("127.0.0.1", "localhost")
        )
        second = run_cli("extract", env=other, cwd=tmp_path)
        plan = run_cli("extract", "--plan", env=other, cwd=tmp_path)
    assert second.returncode == 2
    assert "holds data loaded from http://127.0.0.1/api/v2" in last_line(second.stderr)
    assert file_digest(warehouse) == before
    # the plan of that run is its refusal, not a full run it would never make
    assert (plan.returncode, last_line(plan.stderr)) == (2, last_line(second.stderr))
