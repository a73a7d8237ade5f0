"""TARGET=postgres: the same pipeline into a real PostgreSQL server that asks for a password
(scram-sha-256), with every dbt test passing and marts equal to the DuckDB run's, row for row.
Every way a libpq user gives a password works, and a wrong one is one line and no writes."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import math
import os
import re
import shutil
import socket
from pathlib import Path

import psycopg2
import pytest
from dlt.common.versioned_state import decompress_state
from expected import float_sum, mart_columns_and_rows
from neon_elt import config
from neon_elt.report import build as build_report
from neon_elt.run import dbt
from neon_elt.targets import PostgresTarget
from neon_simulator import PRESETS, Account, Simulator
from postgres_server import postgres_server, server_binaries
from runs import cli_env, files_holding, run_cli

# On a laptop without PostgreSQL these skip; in CI (.ci/run installs it) a missing server fails them.
pytestmark = [
    pytest.mark.slow,  # runs the pipeline, dbt and a server: `make test-fast` leaves it out
    pytest.mark.skipif(
        server_binaries() is None and not os.environ.get("CI"),
        reason="PostgreSQL server binaries missing (.ci/run installs postgresql)",
    ),
]

LIBPQ_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGDATABASE", "PGSSLMODE")


def _pg_env(postgres_url, folder: Path, simulator=None, **extra):
    """A run's environment: its own dlt and dbt folders, and a home of its own, so that neither
    the machine's PG* variables nor a ~/.pgpass of whoever runs the tests can give a password."""
    home = folder / "home"
    home.mkdir(exist_ok=True)
    env = cli_env(
        folder / "unused.duckdb",
        simulator,
        NEON_ELT_TARGET="postgres",
        DLT_DATA_DIR=str(folder / "dlt"),
        DBT_TARGET_PATH=str(folder / "target"),
        DBT_LOG_PATH=str(folder / "logs"),
        HOME=str(home),
    )
    for name in LIBPQ_VARS:
        env.pop(name, None)
    if postgres_url is not None:
        env["NEON_POSTGRES_URL"] = postgres_url
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def server():
    with postgres_server() as running:
        yield running


# A line of Python's logging as dlt formats it: timestamp|[LEVEL]|pid|thread id|logger|...
LIBRARY_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\|\[[A-Z]+\]\|\d+\|", re.MULTILINE)


@pytest.fixture(scope="module")
def postgres_run(server, demo_account, demo_build, tmp_path_factory):
    """The README's first example: the URL without the password, the password in PGPASSWORD. It
    starts from the dlt folder the session's DuckDB run left, as for a user who ran `make demo`
    first: dlt keeps the last run's state there, whatever the destination."""
    folder = tmp_path_factory.mktemp("postgres-run")
    shutil.copytree(demo_build.dlt_dir, folder / "dlt")
    with Simulator(demo_account) as simulator:
        env = _pg_env(server.url, folder, simulator, PGPASSWORD=server.password)
        result = run_cli("elt", env=env, cwd=folder)
    result.folder = folder
    return result


def _normal(value):
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return float_sum(round(value, 9))
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    return value


def _marts_postgres(url, layout) -> dict[str, tuple[list[str], list[tuple]]]:
    connection = psycopg2.connect(url)
    try:
        result = {}
        with connection.cursor() as cursor:
            for table, (columns, _) in layout.items():
                cursor.execute(f"select {', '.join(columns)} from marts.{table}")
                rows = cursor.fetchall()
                result[table] = (columns, sorted((tuple(map(_normal, r)) for r in rows), key=repr))
        return result
    finally:
        connection.close()


def test_elt_into_postgres_builds_and_passes_every_dbt_test(postgres_run):
    assert postgres_run.returncode == 0, postgres_run.stdout[-3000:] + postgres_run.stderr
    assert "ERROR=0" in postgres_run.stdout and "PASS=" in postgres_run.stdout


def test_a_postgres_run_after_a_duckdb_run_prints_no_library_log(postgres_run):
    assert postgres_run.returncode == 0
    assert not LIBRARY_LOG.findall(postgres_run.stdout + postgres_run.stderr), postgres_run.stderr[:2000]


def test_make_demo_after_a_postgres_run_prints_no_library_log(postgres_run, tmp_path):
    """The other way round: the demo (DuckDB) starts from the dlt folder the PostgreSQL run left."""
    assert postgres_run.returncode == 0
    shutil.copytree(postgres_run.folder / "dlt", tmp_path / "dlt")
    env = cli_env(
        tmp_path / "neon_api.duckdb",
        DLT_DATA_DIR=str(tmp_path / "dlt"),
        DBT_TARGET_PATH=str(tmp_path / "target"),
        DBT_LOG_PATH=str(tmp_path / "logs"),
    )
    demo = run_cli("demo", env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "Done. PASS=" in demo.stdout
    assert not LIBRARY_LOG.findall(demo.stdout + demo.stderr), demo.stderr[:2000]


def test_postgres_marts_equal_the_duckdb_marts_row_for_row(postgres_run, server, demo_warehouse):
    assert postgres_run.returncode == 0
    duck = mart_columns_and_rows(demo_warehouse, _normal)
    assert duck and all(rows for _, rows in duck.values())
    postgres = _marts_postgres(server.url_with_password, duck)
    assert {t: (c, len(r)) for t, (c, r) in postgres.items()} == {
        t: (c, len(r)) for t, (c, r) in duck.items()
    }
    for table, (columns, rows) in duck.items():
        for pg_row, duck_row in zip(postgres[table][1], rows, strict=True):
            assert _close(pg_row, duck_row), (
                f"marts.{table}: {dict(zip(columns, pg_row, strict=True))} != {duck_row}"
            )


@pytest.fixture
def postgres_target(postgres_run, server, monkeypatch) -> PostgresTarget:
    """The warehouse the PostgreSQL run built, as the runner resolves it from the README's
    settings: the URL without the password, the password in PGPASSWORD."""
    monkeypatch.setenv("NEON_POSTGRES_URL", server.url)
    monkeypatch.setenv("PGPASSWORD", server.password)
    return PostgresTarget(config.postgres_credentials())


def test_the_models_logic_passes_its_unit_tests_in_postgres_too(
    postgres_run, postgres_target, tmp_path, capsys
):
    """dbt's unit tests (Neon's worked examples, the rounding of a half-way amount) in PostgreSQL,
    whose casts and date arithmetic are not DuckDB's: scheduled runs leave them out."""
    assert postgres_run.returncode == 0
    with postgres_target.build(publish=False) as build:
        dbt(["test", "--select", "test_type:unit"], build, target_path=str(tmp_path / "target"))
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    results = [  # the build's on-run-end hook is an `operation.` result beside them
        result
        for result in json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
        if not result["unique_id"].startswith("operation.")
    ]
    assert {r["unique_id"] for r in results} == set(manifest["unit_tests"]), out[-3000:]
    assert all(r["status"] == "pass" for r in results), out[-3000:]


def _close(left: tuple, right: tuple) -> bool:
    """Equal rows, floats to one part in 10^9: two databases add doubles in their own order, and
    rounding both to a fixed digit can still land a value on either side of it."""
    return len(left) == len(right) and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        if isinstance(a, float) and isinstance(b, float)
        else a == b
        for a, b in zip(left, right, strict=False)
    )


def test_the_password_lands_in_no_output_file_or_table(postgres_run, server):
    """stdout and stderr, every file of dlt's pipeline folder and dbt's target and logs, and every
    row of every table the run wrote (dlt's pipeline state decompressed)."""
    assert postgres_run.returncode == 0
    secret = {server.password}
    assert server.password not in postgres_run.stdout + postgres_run.stderr
    folder = postgres_run.folder
    assert (folder / "dlt").exists() and (folder / "target").exists() and (folder / "logs").exists()
    assert not files_holding(secret, folder)
    assert not _tables_holding(server.url_with_password, server.password)


def _tables_holding(url: str, secret: str) -> list[str]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('neon_api_data', 'staging', 'marts')"
            )
            tables = cursor.fetchall()
            assert len(tables) > 20
            hits = []
            for schema, table in tables:
                cursor.execute(
                    f'select count(*) from "{schema}"."{table}" as t where t::text like %s', [f"%{secret}%"]
                )
                hits += [f"{schema}.{table}"] if cursor.fetchone()[0] else []
            cursor.execute("select state from neon_api_data._dlt_pipeline_state")
            for (state,) in cursor.fetchall():
                hits += ["_dlt_pipeline_state"] if secret in repr(decompress_state(state)) else []
            return hits
    finally:
        connection.close()


def test_the_report_reads_postgres_too(postgres_target, server):
    page = build_report(postgres_target)
    assert page.count('<figure class="chart"') >= 5
    assert server.password not in page


# ------------------------------------------------------------ every way to give the password


def _new_database(server, name: str):
    """The same server, a new empty database."""
    connection = psycopg2.connect(server.url_with_password)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f"create database {name}")
    finally:
        connection.close()
    return dataclasses.replace(server, database=name)


def _password_file(path: Path, server) -> Path:
    """A libpq password file as a user writes one, mode 0600."""
    path.write_text("# another database first\n*:*:other_db:*:not-this-one\n" + server.pgpass_line())
    path.chmod(0o600)
    return path


def _secrets_toml(folder: Path, body: str) -> None:
    (folder / ".dlt").mkdir()
    (folder / ".dlt" / "secrets.toml").write_text(body)


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The command each way runs. dbt gets the password one of two ways: given (the URL, secrets.toml
# and PGPASSWORD all end as one password, as in the module's main run), or left to libpq, which
# finds it in a password file; one run of dbt on the second path is enough, and saves ~10 s a way.
WAYS = {
    "url": "extract",
    "secrets.toml url": "extract",
    "secrets.toml fields": "extract",
    "PGPASSFILE": "extract",
    "~/.pgpass": "elt",
}


@pytest.mark.parametrize("way", WAYS)
def test_every_way_a_libpq_user_gives_the_password_works(way, server, tmp_path):
    """PGPASSWORD is the module's main run; here are the others, each into a database of its
    own: the advisory lock and origin (psycopg2), the extract (dlt), and dbt build for `elt`."""
    database = _new_database(server, f"way_{list(WAYS).index(way)}")
    extra = {"NEON_POSTGRES_URL": database.url}
    if way == "url":
        extra["NEON_POSTGRES_URL"] = database.url_with_password
    elif way == "PGPASSFILE":
        extra["PGPASSFILE"] = str(_password_file(tmp_path / "passwords", database))
    elif way == "~/.pgpass":
        (tmp_path / "home").mkdir()
        _password_file(tmp_path / "home" / ".pgpass", database)
    elif way == "secrets.toml url":
        del extra["NEON_POSTGRES_URL"]
        _secrets_toml(
            tmp_path, f"[destination.postgres]\ncredentials = {_toml(database.url_with_password)}\n"
        )
    else:
        del extra["NEON_POSTGRES_URL"]
        _secrets_toml(
            tmp_path,
            "[destination.postgres.credentials]\n"
            f"host = {_toml(server.host)}\nport = {server.port}\nusername = {_toml(server.user)}\n"
            f"password = {_toml(server.password)}\ndatabase = {_toml(database.database)}\n",
        )
    tiny = Account.generate(PRESETS["tiny"])
    with Simulator(tiny) as simulator:
        env = _pg_env(extra.pop("NEON_POSTGRES_URL", None), tmp_path, simulator, **extra)
        result = run_cli(WAYS[way], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Traceback" not in result.stderr
    assert server.password not in result.stdout + result.stderr
    branches = sum(len(tiny.branches(p["id"])) for p in tiny.all_projects())
    if WAYS[way] == "elt":
        assert "ERROR=0" in result.stdout and _inventory_rows(database.url_with_password) == branches
    else:
        assert _raw_rows(database.url_with_password, "project_branches") == branches
    assert not files_holding({server.password}, tmp_path / "dlt", tmp_path / "target", tmp_path / "logs")
    assert (tmp_path / "dlt").exists()


# ------------------------------------------------------------------- one line, nothing written


def _inventory_rows(url) -> int:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("select count(*) from marts.project_branch_inventory")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def _raw_rows(url, table: str) -> int:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"select count(*) from neon_api_data.{table} where _dlt_valid_to is null")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def _stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _nothing_written(folder: Path) -> bool:
    """No dlt pipeline folder, no dbt output, nothing new where the command ran."""
    return {p.name for p in folder.iterdir()} <= {"home"}


@pytest.mark.parametrize("case", ["wrong password", "no password"])
def test_a_bad_password_is_one_line_exit_2_and_no_writes(case, postgres_run, server, demo_account, tmp_path):
    assert postgres_run.returncode == 0
    before = _inventory_rows(server.url_with_password)
    extra = {"PGPASSWORD": "not-the-password"} if case == "wrong password" else {}
    with Simulator(demo_account) as simulator:
        failed = run_cli("elt", env=_pg_env(server.url, tmp_path, simulator, **extra), cwd=tmp_path)
        requests = simulator.stats.total
    assert failed.returncode == 2, failed.stderr
    lines = _stderr_lines(failed)
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith(f"neon-elt: cannot connect to PostgreSQL at {server.url} ")
    if case == "wrong password":
        assert "(settings from NEON_POSTGRES_URL, password from PGPASSWORD)" in lines[0]
        assert "password authentication failed" in lines[0]
        assert "not-the-password" not in failed.stdout + failed.stderr
    else:
        assert "no password given" in lines[0] and "~/.pgpass" in lines[0]
    assert requests == 0 and _nothing_written(tmp_path)
    assert _inventory_rows(server.url_with_password) == before


def test_an_unreachable_postgres_fails_with_one_line_and_no_password(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    password = "never-printed-8c1f"
    url = f"postgresql://analyst:{password}@127.0.0.1:{port}/warehouse"
    failed = run_cli("transform", env=_pg_env(url, tmp_path), cwd=tmp_path)
    assert failed.returncode == 2
    lines = _stderr_lines(failed)
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith(
        f"neon-elt: cannot connect to PostgreSQL at postgresql://analyst@127.0.0.1:{port}/warehouse"
    )
    assert "NEON_POSTGRES_URL" in lines[0]
    assert password not in failed.stdout + failed.stderr
    assert _nothing_written(tmp_path)


# ------------------------------------------------------------------------ one run at a time


def test_a_second_run_on_the_same_database_stops_at_once(postgres_run, server, tmp_path):
    """A run holds an advisory lock on the database; an overlapping run exits 3 and writes nothing."""
    from neon_elt.targets import ADVISORY_LOCK_KEY

    assert postgres_run.returncode == 0
    holder = psycopg2.connect(server.url_with_password)
    try:
        holder.autocommit = True
        with holder.cursor() as cursor:
            cursor.execute("select pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        busy = run_cli("transform", env=_pg_env(server.url_with_password, tmp_path), cwd=tmp_path)
    finally:
        holder.close()
    assert busy.returncode == 3
    assert f"another run is writing {server.url}" in busy.stderr
    assert server.password not in busy.stdout + busy.stderr
    assert "dbt" not in busy.stdout  # stopped before dbt started


def test_a_postgres_warehouse_never_mixes_two_apis(postgres_run, server, demo_account, tmp_path):
    """The guard DuckDB has, checked before anything is loaded (PostgreSQL has no working copy)."""
    assert postgres_run.returncode == 0
    before = _inventory_rows(server.url_with_password)
    with Simulator(demo_account) as simulator:
        other = simulator.base_url.replace("127.0.0.1", "localhost")
        env = _pg_env(server.url, tmp_path, simulator, NEON_API_BASE_URL=other, PGPASSWORD=server.password)
        mixed = run_cli("elt", env=env, cwd=tmp_path)
        requests = simulator.stats.total
    assert mixed.returncode == 2
    assert "holds data loaded from http://127.0.0.1/api/v2" in mixed.stderr
    assert requests <= 2  # the key check at most: nothing was extracted, nothing loaded
    assert _inventory_rows(server.url_with_password) == before
