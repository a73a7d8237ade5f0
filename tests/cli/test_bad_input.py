"""The bad-input suite: hostile names, values that cannot be typed, bad keys, faults of
the API and hostile error text. Each failing case runs `neon-elt` as a scheduler does (a child
process) on a copy of a warehouse built once for the module, and checks what a user is promised:
one printable, bounded last line naming the cause, the exit code of the README's table, no key in
any output or file, and the published warehouse as it was. Hostile names are no failure: they go
through the extract and dbt build into staging and the marts as they are."""

from __future__ import annotations

import json
import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from expected import query
from neon_simulator import PRESETS, Account, Faults, Simulator
from runs import (
    Stub,
    cli_env,
    consumption_window,
    extract,
    file_digest,
    files_holding,
    key_leaks,
    last_line,
    run_cli,
)

# runs the pipeline, dbt and servers: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

# The last line's bound (cli.LAST_LINE_CHARS), read here as a user reads it: a scheduler mails it.
LAST_LINE_CHARS = 600


@pytest.fixture(scope="module")
def built(tiny_account, tmp_path_factory) -> Path:
    """The account extracted and built by dbt once: every failing case runs on a copy of it."""
    path = tmp_path_factory.mktemp("built") / "neon_api.duckdb"
    with Simulator(tiny_account) as simulator:
        extract(path, simulator, transform=True)
    return path


def marts(warehouse: Path) -> dict[str, list]:
    """Every mart's rows, sorted: what analysts read."""
    tables = [
        row[0]
        for row in query(
            warehouse, "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    ]
    return {t: sorted(query(warehouse, f"select * from marts.{t}"), key=repr) for t in sorted(tables)}


# ------------------------------------------------------------------------------------ the cases


@contextmanager
def simulated(account: Account, faults: Faults | None = None) -> Iterator[tuple[str, str]]:
    with Simulator(account, faults=faults) as simulator:
        yield simulator.base_url, simulator.api_key


def changed(change: Callable[[Account], None], faults: Faults | None = None):
    """A fresh tiny account that serves what `change` does to its records."""

    @contextmanager
    def serve(_: Account) -> Iterator[tuple[str, str]]:
        account = Account.generate(PRESETS["tiny"])
        change(account)
        with simulated(account, faults) as served:
            yield served

    return serve


def faulty(faults: Faults):
    return lambda account: simulated(account, faults)


STUB_KEY = "napi_" + secrets.token_hex(30)


def stubbed(status: int, content_type: str, body: bytes):
    """A server that answers every request so: a broken proxy, a hostile server."""

    @contextmanager
    def serve(_: Account) -> Iterator[tuple[str, str]]:
        with Stub([(status, {"Content-Type": content_type}, body)]) as stub:
            yield stub.base_url, STUB_KEY

    return serve


def first_branch(account: Account) -> tuple[str, str]:
    project = account.all_projects()[0]["id"]
    return project, account.branches(project)[0]["id"]


def endpoint_max_cu(value):
    def change(account: Account) -> None:
        project, _ = first_branch(account)
        account._project(project).endpoints[0]["autoscaling_limit_max_cu"] = value  # the record it serves

    return change


def role_protected(value):
    def change(account: Account) -> None:
        project, branch = first_branch(account)
        account._project(project).roles[branch][0]["protected"] = value

    return change


def consumption_value(value: Callable[[int], object]):
    """Every consumption metric served as `value` makes of its number."""

    def change(account: Account) -> None:
        periods = account._periods

        def serve(*args, **kwargs):
            served = periods(*args, **kwargs)
            for period in served:
                for frame in period["consumption"]:
                    for metric in frame["metrics"]:
                        metric["value"] = value(metric["value"])
            return served

        account._periods = serve  # this account's only: the server reads its periods here

    return change


@dataclass(frozen=True)
class Case:
    serve: Callable  # account -> context manager of (base URL, the valid key)
    code: int  # the README's table
    names: tuple[str, ...]  # what the last line names
    key: Callable[[str], str] = lambda key: key  # the key the run is given, from the valid one
    key_variable: str = "NEON_API_KEY"  # where it is given (that one is stripped: dlt's is not)
    env: dict[str, str] = field(default_factory=dict)


HOSTILE_TEXT = "\x1b[31mdenied\x1b[0m\r\nnext line\x07\x00 " + "x" * 200_000
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

DLT_KEY = "SOURCES__NEON_API_SOURCE__API_KEY"
CASES = {
    # values its column cannot hold: the run fails naming table and column, nothing loads
    "untypeable double": Case(
        changed(endpoint_max_cu("lots")), 1, ("endpoints", "autoscaling_limit_max_cu", "double")
    ),
    "untypeable bool": Case(changed(role_protected("maybe")), 1, ("roles", "protected", "bool")),
    "untypeable consumption": Case(
        changed(consumption_value(lambda _: "abc")), 1, ("consumption_history", "metric")
    ),
    # keys: one line, exit 2, before any request and never echoed
    "key with a newline": Case(
        simulated, 2, ("API key", "whitespace"), key=lambda k: k + "\n", key_variable=DLT_KEY
    ),
    "key with a space": Case(
        simulated, 2, ("API key", "whitespace"), key=lambda k: " " + k, key_variable=DLT_KEY
    ),
    "key not ASCII": Case(simulated, 2, ("API key", "ASCII"), key=lambda k: k[:-2] + "ключ"),
    "key rejected": Case(simulated, 2, ("401", "rejected"), key=lambda k: k[:-6] + "000000"),
    # faults of the API past the retries: exit 1
    "5xx storm": Case(faulty(Faults(error_rate=1.0)), 1, ("answered 5", "attempts")),
    "trickling answers": Case(
        faulty(Faults(trickle={"/users/me/organizations": 0.2})),
        1,
        ("/users/me/organizations", "request_deadline_seconds"),
        env={"SOURCES__NEON_API_SOURCE__REQUEST_DEADLINE_SECONDS": "0.5"},
    ),
    "bodies cut short": Case(faulty(Faults(truncate_rate=1.0)), 1, ("/users/me/organizations", "attempts")),
    "malformed JSON": Case(faulty(Faults(not_json_rate=1.0)), 1, ("not valid JSON",)),
    "HTML error page": Case(stubbed(502, "text/html", HTML_502), 1, ("502", "Bad Gateway")),
    # hostile error text: escape codes, newlines, a bell, a NUL, 5 MB
    "escape codes and newlines": Case(
        stubbed(400, "application/json", json.dumps({"message": HOSTILE_TEXT}).encode()), 1, ("400", "denied")
    ),
    "5 MB error body": Case(stubbed(400, "text/plain", b"y" * 5_000_000), 1, ("400",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_ends_in_one_line_its_exit_code_no_key_and_the_warehouse_as_it_was(
    case, tiny_account, built, tmp_path
):
    published = tmp_path / "warehouse" / "neon_api.duckdb"
    published.parent.mkdir()
    shutil.copyfile(built, published)
    before = file_digest(published)
    dlt_dir, cwd = tmp_path / "dlt", tmp_path / "cwd"
    cwd.mkdir()
    with case.serve(tiny_account) as (base_url, valid_key):
        key = case.key(valid_key)
        env = cli_env(
            published,
            None,
            NEON_API_BASE_URL=base_url,
            **{case.key_variable: key},
            DLT_DATA_DIR=str(dlt_dir),
            SOURCES__NEON_API_SOURCE__MAX_ATTEMPTS="2",
            **case.env,
        )
        # a full run reads every value served, not only what changed since the warehouse was built
        result = run_cli("extract", "--full-refresh", env=env, cwd=cwd, timeout=120)
    message = last_line(result.stderr)
    assert result.returncode == case.code, result.stderr[-2000:]
    assert message.startswith("neon-elt: ") and message.isprintable(), message[:300]
    assert len(message) <= LAST_LINE_CHARS and "Traceback" not in result.stderr
    assert all(name in message for name in case.names), message
    assert all(line.isprintable() and len(line) <= LAST_LINE_CHARS for line in result.stderr.splitlines())
    for secret in {key, valid_key}:
        assert key_leaks(secret, result.stdout, result.stderr) == []
        assert files_holding({secret.strip().removeprefix("napi_")}, dlt_dir, cwd, published.parent) == []
    assert file_digest(published) == before
    assert sorted(p.name for p in published.parent.iterdir()) == [published.name]  # no lock, no copy


# --------------------------------------------------------------------- values served as strings


def test_consumption_values_served_as_numeric_strings_are_read_as_numbers(tmp_path):
    """`"value": "12"`: read as dlt reads a string into an integer column of every other table."""
    account = Account.generate(PRESETS["tiny"])
    consumption_value(str)(account)
    start, end = consumption_window(account.now)
    served = sum(
        value
        for project in account.all_projects()
        for frame in account.consumption(project["id"])
        if start.isoformat() <= frame["timeframe_start"].replace("Z", "+00:00") < end.isoformat()
        for value in frame["metrics"].values()
    )
    path = tmp_path / "neon_api.duckdb"
    with Simulator(account) as simulator:
        extract(path, simulator)
    assert query(path, "select sum(value) from neon_api_data.consumption")[0][0] == served > 0


# ---------------------------------------------------------------------- the run's deadline, in dbt


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("ctrl_c", ["default", "ignored"])
def test_the_run_deadline_ends_dbt_with_one_line_and_exit_1(ctrl_c, built, tmp_path):
    """A database that hangs would hold `dbt build` forever: a deadline shorter than dbt's own
    start ends it there, and dbt stops when asked, within its grace period, also when the run was
    started ignoring Ctrl-C (as a script's background job is), which dbt would inherit."""
    published = tmp_path / "warehouse" / "neon_api.duckdb"
    published.parent.mkdir()
    shutil.copyfile(built, published)
    before = file_digest(published)
    logs = tmp_path / "dbt-logs"
    env = cli_env(
        published, None, SOURCES__NEON_API_SOURCE__RUN_DEADLINE_SECONDS="0.5", DBT_LOG_PATH=str(logs)
    )
    preexec = _ignore_ctrl_c if ctrl_c == "ignored" else None
    result = run_cli("transform", env=env, cwd=tmp_path, timeout=120, preexec_fn=preexec)
    # dbt stopped when asked: in its start-up (no log yet), or with its own last word, not left to
    # finish its build, nor killed after its grace period
    log = (logs / "dbt.log").read_text() if (logs / "dbt.log").exists() else ""
    assert not log or "Command `dbt build` failed" in log, log[-500:]
    assert result.returncode == 1, result.stderr[-2000:]
    assert last_line(result.stderr) == (
        "neon-elt: the run passed its deadline of 0.5 s (run_deadline_seconds) during dbt build. "
        "The published warehouse is unchanged."
    )
    assert file_digest(published) == before
    assert sorted(p.name for p in published.parent.iterdir()) == [published.name]


# -------------------------------------------------------------------------------- hostile names


HOSTILE_NAMES = {
    "control characters": ("project", "bell\x07 escape\x1b[31m red\x1b[0m tab\t return\r newline\n end"),
    "NUL": ("branch", "before\x00after"),
    "100 KB": ("branch", "n" * 100_000),
    "right-to-left marks": ("project", "\u202eevil.exe\u202c \u200fשלום\u200f"),
    "SQL quotes in a project": ("project", "o'brien\"; drop table projects; --"),
    "SQL quotes in a branch": ("branch", "it's \"main\"'); --"),
    "SQL quotes in a database": ("database", "db'; drop schema marts cascade; --"),
    "SQL quotes in a role": ("role", "r\"ole's"),
}

# where each kind of name lands for analysts: marts for projects and branches (the inventory), the
# staging views for databases and roles, which no mart lists by name
LANDS_IN = {
    "project": "select project_name from marts.project_branch_inventory",
    "branch": "select branch_name from marts.project_branch_inventory",
    "database": "select database_name from staging.stg_neon__databases",
    "role": "select role_name from staging.stg_neon__roles",
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One `neon-elt elt` (extract and dbt build) of an account whose names are all hostile."""
    account = Account.generate(PRESETS["tiny"])
    projects = [p["id"] for p in account.all_projects()]
    owners = {"project": iter(projects), "branch": iter(projects), "database": iter(projects)}
    for kind, name in HOSTILE_NAMES.values():
        if kind == "project":
            account.rename_project(next(owners["project"]), name)
        elif kind == "branch":
            project = next(owners["branch"])
            account.rename_branch(project, account.branches(project)[0]["id"], name)
        elif kind == "database":
            project = next(owners["database"])
            account.create_database(project, account.branches(project)[0]["id"], name)
        else:
            account.create_role(projects[0], account.branches(projects[0])[0]["id"], name)
    folder = tmp_path_factory.mktemp("hostile")
    warehouse, dlt_dir = folder / "neon_api.duckdb", folder / "dlt"
    with Simulator(account) as simulator:
        env = cli_env(warehouse, simulator, DLT_DATA_DIR=str(dlt_dir))
        result = run_cli("elt", env=env, cwd=folder, timeout=600)
        key = simulator.api_key
    return result, warehouse, key, [dlt_dir, folder]


@pytest.mark.parametrize(("kind", "name"), HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_a_hostile_name_goes_through_dbt_build_as_it_is(kind, name, hostile_run):
    result, warehouse, key, folders = hostile_run
    assert result.returncode == 0, result.stderr[-2000:]
    assert last_line(result.stdout).startswith("Warehouse published: ")
    assert all(line.isprintable() for line in result.stderr.splitlines()), result.stderr[-2000:]
    assert key_leaks(key, result.stdout, result.stderr) == []
    assert files_holding({key.removeprefix("napi_")}, *folders) == []
    assert name in {row[0] for row in query(warehouse, LANDS_IN[kind])}
