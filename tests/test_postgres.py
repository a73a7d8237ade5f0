"""TARGET=postgres: the same pipeline into a real PostgreSQL server, with every dbt test passing
and marts equal to the DuckDB run's, row for row."""

from __future__ import annotations

import datetime
import decimal
import os
import socket

import psycopg2
import pytest
from expected import mart_columns_and_rows
from neon_elt import config
from neon_elt.report import build as build_report
from neon_elt.targets import PostgresTarget
from neon_simulator import Simulator
from postgres_server import postgres_server, server_binaries
from runs import cli_env, run_cli

# On a laptop without PostgreSQL these skip; in CI (.ci/run installs it) a missing server fails them.
pytestmark = pytest.mark.skipif(
    server_binaries() is None and not os.environ.get("CI"),
    reason="PostgreSQL server binaries missing (.ci/run installs postgresql)",
)

PASSWORD = "never-printed-8c1f"


def _pg_env(postgres_url, folder, simulator=None, **extra):
    return cli_env(
        folder / "unused.duckdb",
        simulator,
        NEON_ELT_TARGET="postgres",
        NEON_POSTGRES_URL=postgres_url,
        DLT_DATA_DIR=str(folder / "dlt"),
        DBT_TARGET_PATH=str(folder / "target"),
        **extra,
    )


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        # trust authentication accepts any password: one in the URL checks that none is printed
        yield url.replace("neon_elt@", f"neon_elt:{PASSWORD}@")


@pytest.fixture(scope="module")
def postgres_run(postgres_url, demo_account, tmp_path_factory):
    folder = tmp_path_factory.mktemp("postgres-run")
    with Simulator(demo_account) as simulator:
        return run_cli("elt", env=_pg_env(postgres_url, folder, simulator), cwd=folder)


def _normal(value):
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return round(value, 9)
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


def test_the_password_is_never_printed(postgres_run):
    assert PASSWORD not in postgres_run.stdout + postgres_run.stderr


def test_postgres_marts_equal_the_duckdb_marts_row_for_row(postgres_run, postgres_url, demo_warehouse):
    assert postgres_run.returncode == 0
    duck = mart_columns_and_rows(demo_warehouse, _normal)
    assert duck and all(rows for _, rows in duck.values())
    assert _marts_postgres(postgres_url, duck) == duck


def test_the_report_reads_postgres_too(postgres_run, postgres_url, monkeypatch):
    monkeypatch.setenv("NEON_POSTGRES_URL", postgres_url)
    page = build_report(PostgresTarget(config.postgres_credentials()))
    assert page.count('<figure class="chart"') >= 5
    assert PASSWORD not in page


def _inventory_rows(url) -> int:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("select count(*) from marts.project_branch_inventory")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_a_second_run_on_the_same_database_stops_at_once(postgres_run, postgres_url, tmp_path):
    """A run holds an advisory lock on the database; an overlapping run exits 3 and writes nothing."""
    from neon_elt.targets import ADVISORY_LOCK_KEY

    assert postgres_run.returncode == 0
    holder = psycopg2.connect(postgres_url)
    try:
        holder.autocommit = True
        with holder.cursor() as cursor:
            cursor.execute("select pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        busy = run_cli("transform", env=_pg_env(postgres_url, tmp_path), cwd=tmp_path)
    finally:
        holder.close()
    assert busy.returncode == 3
    assert "another run is writing postgresql://neon_elt@127.0.0.1" in busy.stderr
    assert PASSWORD not in busy.stdout + busy.stderr
    assert "dbt" not in busy.stdout  # stopped before dbt started


def test_a_postgres_warehouse_never_mixes_two_apis(postgres_run, postgres_url, demo_account, tmp_path):
    """The guard DuckDB has, checked before anything is loaded (PostgreSQL has no working copy)."""
    assert postgres_run.returncode == 0
    before = _inventory_rows(postgres_url)
    with Simulator(demo_account) as simulator:
        other = simulator.base_url.replace("127.0.0.1", "localhost")
        mixed = run_cli(
            "elt", env=_pg_env(postgres_url, tmp_path, simulator, NEON_API_BASE_URL=other), cwd=tmp_path
        )
        requests = simulator.stats.total
    assert mixed.returncode == 2
    assert "holds data loaded from http://127.0.0.1/api/v2" in mixed.stderr
    assert requests <= 2  # the key check at most: nothing was extracted, nothing loaded
    assert _inventory_rows(postgres_url) == before


def test_an_unreachable_postgres_fails_with_one_line_and_no_password(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"postgresql://analyst:{PASSWORD}@127.0.0.1:{port}/warehouse"
    failed = run_cli("transform", env=_pg_env(url, tmp_path), cwd=tmp_path)
    assert failed.returncode == 2
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(
        f"neon-elt: cannot connect to PostgreSQL at postgresql://analyst@127.0.0.1:{port}/warehouse"
    )
    assert "NEON_POSTGRES_URL" in lines[-1]
    assert PASSWORD not in failed.stdout + failed.stderr
