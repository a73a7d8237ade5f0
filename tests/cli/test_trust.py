"""Trust under fire: two runs on one host, a hung API, hostile keys and values, a lost
table. Each case runs `neon-elt` as a scheduler does (a child process) and checks what a user is
promised: one line, the documented exit code, no key in any output, the published warehouse as
it was."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import (
    Stub,
    cli_env,
    expected_table_counts,
    extract,
    file_digest,
    key_leaks,
    landed_counts,
    last_line,
    run_cli,
)

# runs the pipeline or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


def start_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    executable = Path(sys.executable).with_name("neon-elt")
    return subprocess.Popen(
        [str(executable), *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# ------------------------------------------------------------- 1. two runs on one machine


def test_two_runs_into_two_warehouses_at_once_both_succeed(demo_account, tmp_path):
    """`make demo` during a scheduled `make elt` into another warehouse, on one machine: both
    share dlt's data folder (DLT_DATA_DIR, else ~/.dlt), and neither may touch the other's files.
    The second starts while the first is mid-extract."""
    dlt_dir = tmp_path / "dlt"
    warehouses = [tmp_path / "a" / "neon_api.duckdb", tmp_path / "b" / "neon_api.duckdb"]
    for warehouse in warehouses:
        warehouse.parent.mkdir()
    with Simulator(demo_account, latency=0.01) as simulator:
        envs = [cli_env(w, simulator, DLT_DATA_DIR=str(dlt_dir)) for w in warehouses]
        started = datetime.now(UTC)  # the runs' clock
        first = start_cli("extract", env=envs[0], cwd=warehouses[0].parent)
        deadline = time.monotonic() + 120
        while simulator.stats.total < 20 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # polls the first run's progress: it is mid-extract from here
        second = start_cli("extract", env=envs[1], cwd=warehouses[1].parent)
        outcomes = [process.communicate(timeout=300) for process in (first, second)]
        codes = [first.returncode, second.returncode]
        finished = datetime.now(UTC)
    assert codes == [0, 0], [last_line(stderr) for _, stderr in outcomes]
    # each run takes its clock between the two: an hour may turn in between (a new hour of
    # hourly consumption), and the run lands what a first run at its own clock lands
    expected = [expected_table_counts(demo_account, moment) for moment in (started, finished)]
    for warehouse in warehouses:
        assert landed_counts(warehouse) in expected


# ------------------------------------------------------------------------- 2. deadlines


@pytest.fixture(scope="module")
def tiny_warehouse(tiny_account, tmp_path_factory) -> Path:
    """The tiny account extracted once; tests run against copies of it."""
    path = tmp_path_factory.mktemp("tiny") / "neon_api.duckdb"
    with Simulator(tiny_account) as simulator:
        extract(path, simulator)
    return path


@pytest.fixture
def published(tiny_warehouse, tmp_path) -> Path:
    path = tmp_path / "warehouse" / "neon_api.duckdb"
    path.parent.mkdir()
    shutil.copyfile(tiny_warehouse, path)
    return path


BRANCHES = "/projects/{project_id}/branches"


@pytest.mark.parametrize(
    ("deadline", "setting"),
    [
        ("REQUEST_DEADLINE_SECONDS", "request_deadline_seconds"),
        ("RUN_DEADLINE_SECONDS", "run_deadline_seconds"),
    ],
)
def test_a_trickling_route_ends_the_run_at_its_deadline(deadline, setting, tiny_account, published, tmp_path):
    """A server that sends a byte every half second never trips a per-read timeout and would
    take minutes per body: the deadline ends the request (retried, then given up) or the run."""
    before = file_digest(published)
    with Simulator(tiny_account, faults=Faults(trickle={BRANCHES: 0.5})) as simulator:
        env = cli_env(published, simulator, SOURCES__NEON_API_SOURCE__MAX_ATTEMPTS="2")
        env[f"SOURCES__NEON_API_SOURCE__{deadline}"] = "1.5"
        started = time.monotonic()
        result = run_cli("extract", "--full-refresh", env=env, cwd=tmp_path, timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    message = last_line(result.stderr)
    assert message.startswith("neon-elt: extract failed: ") and BRANCHES.split("{")[0] in message
    assert setting in message and "Traceback" not in result.stderr
    assert file_digest(published) == before
    print(f"{setting}=1.5: the run ended after {elapsed:.1f} s")


# ------------------------------------------------------------------- 3. the key, checked


@pytest.mark.parametrize("case", ["newline in secrets.toml", "space in the variable", "non-ascii"])
def test_a_malformed_key_is_refused_before_use_and_never_echoed(case, tiny_account, published, tmp_path):
    before = file_digest(published)
    cwd = tmp_path / "run"
    (cwd / ".dlt").mkdir(parents=True)
    with Simulator(tiny_account) as simulator:
        key = simulator.api_key
        env = cli_env(published, simulator)
        del env["NEON_API_KEY"]
        if case == "newline in secrets.toml":
            (cwd / ".dlt" / "secrets.toml").write_text(f'[sources.neon_api_source]\napi_key = "{key}\\n"\n')
        elif case == "space in the variable":
            env["SOURCES__NEON_API_SOURCE__API_KEY"] = f"{key} "
        else:
            env["SOURCES__NEON_API_SOURCE__API_KEY"] = key[:-2] + "ключ"
        result = run_cli("extract", env=env, cwd=cwd, timeout=60)
        requests = simulator.stats.total
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1
    message = last_line(result.stderr)
    assert message.startswith("neon-elt: ") and "API key" in message
    assert key_leaks(key, result.stdout, result.stderr) == []
    assert requests == 0
    assert file_digest(published) == before


def test_plain_http_to_another_host_is_refused_unless_allowed(tmp_path, monkeypatch):
    from neon_api_source import configuration
    from neon_api_source.helpers import SourceConfigError

    monkeypatch.setenv("NEON_API_KEY", "napi_" + "k" * 60)
    monkeypatch.setenv("NEON_API_BASE_URL", "http://neon.example.com/api/v2")
    with pytest.raises(SourceConfigError, match="allow_insecure_http") as refused:
        configuration.resolve()
    assert "\n" not in str(refused.value) and "k" * 6 not in str(refused.value)
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__ALLOW_INSECURE_HTTP", "true")
    assert configuration.resolve().base_url == "http://neon.example.com/api/v2"
    for local in ("http://127.0.0.1:8080/api/v2", "http://localhost:9/api/v2", "http://[::1]:9/api/v2"):
        monkeypatch.delenv("SOURCES__NEON_API_SOURCE__ALLOW_INSECURE_HTTP", raising=False)
        monkeypatch.setenv("NEON_API_BASE_URL", local)
        assert configuration.resolve().base_url == local  # the simulator, a local proxy


def test_plain_http_to_another_host_exits_2_before_any_request(tiny_account, published, tmp_path):
    with Simulator(tiny_account) as simulator:
        env = cli_env(published, simulator, NEON_API_BASE_URL="http://neon.example.com/api/v2")
        result = run_cli("extract", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert last_line(result.stderr).startswith("neon-elt: ") and "allow_insecure_http" in result.stderr


# -------------------------------------------------- 4. every failure's last line, bounded


def stub_client(stub: Stub):
    from neon_api_source.configuration import NeonApiSourceConfiguration, make_client

    settings = NeonApiSourceConfiguration(
        api_key="napi_stub", base_url=stub.base_url, requests_per_minute=0, backoff_max_seconds=0.05
    )
    return make_client(settings, key_source="the test key")


HOSTILE = "\x1b[31mdenied\x1b[0m\r\nnext line\x07\x00" + "x" * 200_000


def test_hostile_error_text_ends_in_one_bounded_printable_line(published, tmp_path):
    body = json.dumps({"message": HOSTILE}).encode()
    with Stub([(400, {"Content-Type": "application/json"}, body)]) as stub:
        env = cli_env(published, None, NEON_API_KEY="napi_stub", NEON_API_BASE_URL=stub.base_url)
        result = run_cli("extract", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    message = last_line(result.stderr)
    assert message.startswith("neon-elt: extract failed: ") and "400" in message and "denied" in message
    assert message.isprintable() and len(message) <= 600, message[:300]
    assert "x" * 1000 not in result.stderr


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "soon"])
def test_a_retry_after_that_is_no_duration_counts_as_absent(value):
    organizations = {"organizations": [{"id": "org-1", "name": "one"}]}
    answers = [
        (429, {"Retry-After": value}, b'{"message": "too many requests"}'),
        (200, {"Content-Type": "application/json"}, json.dumps(organizations).encode()),
    ]
    with Stub(answers) as stub:
        client = stub_client(stub)
        assert client.get("/users/me/organizations") == organizations
    assert stub.requests == 2 and client.stats.throttled == 1


def test_a_rejected_key_exits_2_as_the_readme_says(tiny_account, published, tmp_path):
    before = file_digest(published)
    with Simulator(tiny_account) as simulator:
        result = run_cli(
            "extract", env=cli_env(published, simulator, api_key="napi_not_the_key"), cwd=tmp_path
        )
    assert result.returncode == 2
    assert "401" in last_line(result.stderr) and "NEON_API_KEY environment variable" in last_line(
        result.stderr
    )
    assert file_digest(published) == before


def test_a_base_url_without_api_v2_gets_a_hint(tiny_account, published, tmp_path):
    with Simulator(tiny_account) as simulator:
        root = simulator.base_url.removesuffix("/api/v2")
        result = run_cli("extract", env=cli_env(published, simulator, NEON_API_BASE_URL=root), cwd=tmp_path)
    assert result.returncode == 2
    message = last_line(result.stderr)
    assert "404" in message and f"{root}/api/v2" in message


def test_a_warehouse_name_with_a_quote_fails_before_the_extract(tiny_account, tmp_path):
    warehouse = tmp_path / "it's.duckdb"
    with Simulator(tiny_account) as simulator:
        result = run_cli("elt", env=cli_env(warehouse, simulator), cwd=tmp_path, timeout=120)
        requests = simulator.stats.total
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_line(result.stderr).startswith("neon-elt: NEON_DUCKDB_PATH=") and requests == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sigterm_ends_a_run_as_ctrl_c_does(demo_account, tiny_warehouse, tmp_path):
    """What `timeout`, systemd and GitHub Actions send: the lock and the working copy go."""
    published = tmp_path / "neon_api.duckdb"
    shutil.copyfile(tiny_warehouse, published)
    before = file_digest(published)
    with Simulator(demo_account, latency=0.05) as simulator:
        run = start_cli("extract", env=cli_env(published, simulator), cwd=tmp_path)
        deadline = time.monotonic() + 60
        while simulator.stats.total < 5 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # polls: mid-extract from here
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert last_line(stderr) == "neon-elt: interrupted (SIGTERM); the published warehouse is unchanged."
    assert sorted(p.name for p in tmp_path.iterdir()) == [published.name]  # no lock, no working copy
    assert file_digest(published) == before


# ---------------------------------------------------------------------- 6. a lost table


@pytest.mark.parametrize(
    ("table", "options"), [("confirmations", ()), ("project_branches", ("--full-refresh",))]
)
def test_a_warehouse_that_lost_a_table_recovers_with_a_full_run(
    table, options, tiny_account, published, tmp_path
):
    """A user cleaning up, or a restore from an older backup: the next run reads everything again.
    It runs at the wall clock, which may be a day past the warehouse's first run (the account's
    clock, the test run's start): the lost table comes back whole, as a first run at that time
    lands it, and no other table loses a row (a new day adds snapshots and consumption)."""
    import duckdb

    before = landed_counts(published)
    connection = duckdb.connect(str(published))
    connection.execute(f"drop table neon_api_data.{table}")
    connection.close()
    with Simulator(tiny_account) as simulator:
        started = datetime.now(UTC)  # the run's clock
        result = run_cli("extract", *options, env=cli_env(published, simulator), cwd=tmp_path, timeout=120)
    assert result.returncode == 0, last_line(result.stderr)
    after = landed_counts(published)
    assert after[table] == expected_table_counts(tiny_account, started)[table] > 0
    assert {name: count for name, count in before.items() if after[name] < count} == {}


# ------------------------------------------------------------------ 5. untypeable values


def test_a_value_that_cannot_be_typed_fails_the_run_naming_table_and_column(published, tmp_path):
    """`logical_size: "unknown"` would land in a `logical_size__v_text` side column, and the
    regional totals come out low with exit 0."""
    account = Account.generate(PRESETS["tiny"])
    project = account.all_projects()[0]["id"]
    branch = account.branches(project)[0]["id"]
    account._project(project).branches[branch]["logical_size"] = "unknown"  # the record it serves
    assert account.branches(project)[0]["logical_size"] == "unknown"  # the served record
    before = file_digest(published)
    with Simulator(account) as simulator:
        result = run_cli("extract", "--full-refresh", env=cli_env(published, simulator), cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:]
    message = last_line(result.stderr)
    assert message.startswith("neon-elt: extract failed: ")
    assert "branch_snapshots" in message and "logical_size" in message, message
    assert file_digest(published) == before
