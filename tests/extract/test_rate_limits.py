"""The client's rate limiter against the simulator's strict limits: no 429 under Neon's own numbers
with jittered latency, and a run that adapts to a squeezed budget, from the start or mid-run,
with few 429s and the same data as a clean run.

Speed is the benchmark's business (`make bench`); these tests assert counts. To stay short they
run against a Neon that is `FAST` times faster (every rate multiplied, bursts as they are), with
the client told the same numbers, on a 20-project account, and without added latency: Python's
own time per request does not shrink with the limits, so it stands in for the latency."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import dlt
import pytest
from expected import RUN_TIME_COLUMN, query
from neon_api_source import configuration, listings, neon_api_source, settings
from neon_api_source.configuration import make_client
from neon_api_source.helpers import SourceConfigError
from neon_api_source.limiter import RateLimiter, neon_rate_limiter
from neon_elt import cli
from neon_simulator import PRESETS, Account, Faults, RateLimits, Simulator
from runs import cli_env, extract, run_cli
from suite import client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

FAST = 10
BRANCHES = "/projects/{project_id}/branches"


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.generate(dataclasses.replace(PRESETS["demo"], projects=20, seed=16))


@pytest.fixture(scope="module")
def clean(account, tmp_path_factory) -> dict[str, list[tuple]]:
    """The raw tables of a run without any limit."""
    warehouse = tmp_path_factory.mktemp("clean") / "neon_api.duckdb"
    with Simulator(account) as simulator:
        extract(warehouse, simulator)
    return raw_tables(warehouse)


def raw_tables(warehouse) -> dict[str, list[tuple]]:
    """Every raw table, as sorted rows of the columns that do not depend on the run's time."""
    tables = {}
    for (table,) in query(
        warehouse,
        "select table_name from information_schema.tables where table_schema = 'neon_api_data' "
        "and table_name not like '\\_dlt%' escape '\\'",
    ):
        columns = [
            column
            for (column,) in query(
                warehouse,
                "select column_name from information_schema.columns where table_schema = 'neon_api_data' "
                "and table_name = ? order by ordinal_position",
                [table],
            )
            if not column.startswith("_dlt") and not RUN_TIME_COLUMN.search(column)
        ]
        quoted = ", ".join(f'"{column}"' for column in columns)
        rows = query(warehouse, f"select {quoted} from neon_api_data.{table}")
        tables[table] = sorted(rows, key=repr)
    return tables


def fast_neon() -> RateLimits:
    """Neon's limits, FAST times faster."""
    neon = RateLimits.neon()
    return dataclasses.replace(
        neon,
        account_rate=neon.account_rate * FAST,
        route_rate=neon.route_rate * FAST,
        consumption_rate=neon.consumption_rate * FAST,
    )


def fast_limiter(budget_share: float = 1.0) -> RateLimiter:
    """The client's limiter, told the numbers of `fast_neon`."""
    return RateLimiter(
        settings.REQUESTS_PER_MINUTE * FAST,
        settings.ACCOUNT_BURST,
        settings.ROUTE_REQUESTS_PER_SECOND * FAST,
        settings.ROUTE_BURST,
        {
            listings.CONSUMPTION.route: (
                settings.CONSUMPTION_REQUESTS_PER_MINUTE * FAST,
                settings.CONSUMPTION_BURST,
            )
        },
        budget_share=budget_share,
    )


# --------------------------------------------------------------------------- Neon's own numbers


def test_no_429_under_neons_limits_with_jittered_latency(account):
    """60 requests to one route from 16 workers, against Neon's real numbers, with arrivals
    delayed by 20 to 50 ms: a client burst as deep as Neon's (38 of 40) puts more than 40 on
    the route within a second, and bunched arrivals find the account's bucket empty."""
    project_ids = [p["id"] for p in account.all_projects()] * 3
    with Simulator(account, rate_limits=RateLimits.neon(), latency=0.02, jitter=0.03) as simulator:
        client = client_for(simulator, limiter=neon_rate_limiter())
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda pid: client.get(BRANCHES, project_id=pid), project_ids))
        served = simulator.stats
    assert served.rate_limited == 0 and client.stats.throttled == 0
    assert served.total == len(project_ids)


# ----------------------------------------------------------------------------- squeezed budgets


def test_a_run_granted_30_percent_of_the_budget_completes_with_few_429s_and_the_same_data(
    account, clean, tmp_path
):
    with Simulator(account, rate_limits=fast_neon().scaled(0.3)) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator, limiter=fast_limiter())
        served = simulator.stats
    assert raw_tables(tmp_path / "neon_api.duckdb") == clean
    assert served.rate_limited == result.stats.throttled > 0
    assert served.rate_limited <= 0.05 * served.total
    granted = 0.3 * settings.REQUESTS_PER_MINUTE * FAST
    assert result.stats.rate < 1.6 * granted, "it learnt a rate near the one granted"


def test_a_run_adapts_when_another_tool_takes_most_of_the_budget_mid_run(account, clean, tmp_path):
    with Simulator(account, rate_limits=fast_neon().dropping(after=60, to=0.2)) as simulator:
        result = extract(tmp_path / "neon_api.duckdb", simulator, limiter=fast_limiter())
        served = simulator.stats
    assert raw_tables(tmp_path / "neon_api.duckdb") == clean
    assert served.rate_limited == result.stats.throttled > 0
    assert served.rate_limited <= 0.05 * served.total
    assert result.stats.rate < result.stats.rate_ceiling / 2, "it slowed down for the whole account"


def test_a_budget_share_leaves_the_rest_of_the_account_alone(account):
    """Half the budget taken on purpose, against an account that grants exactly half: no 429,
    also when 16 workers send 100 requests to one route."""
    project_ids = [p["id"] for p in account.all_projects()] * 5
    with Simulator(account, rate_limits=fast_neon().scaled(0.5)) as simulator:
        client = client_for(simulator, limiter=fast_limiter(budget_share=0.5))
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda pid: client.get(BRANCHES, project_id=pid), project_ids))
        served = simulator.stats
    assert served.rate_limited == 0 and served.total == len(project_ids)
    assert client.stats.rate_ceiling == pytest.approx(
        0.5 * settings.RATE_SAFETY * settings.REQUESTS_PER_MINUTE * FAST
    )


def test_a_budget_used_up_for_longer_than_the_wait_ends_the_run_in_one_line(account, tmp_path):
    roles = "/projects/{project_id}/branches/{branch_id}/roles"
    warehouse = tmp_path / "neon_api.duckdb"
    env = cli_env(
        warehouse,
        SOURCES__NEON_API_SOURCE__REQUESTS_PER_MINUTE=str(settings.REQUESTS_PER_MINUTE * FAST),
        SOURCES__NEON_API_SOURCE__MAX_THROTTLE_WAIT_SECONDS="2",
    )
    with Simulator(account, faults=Faults(persistent={roles: 429})) as simulator:
        env.update(NEON_API_BASE_URL=simulator.base_url, NEON_API_KEY=simulator.api_key)
        result = run_cli("extract", "--no-consumption", env=env, cwd=tmp_path)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"neon-elt: extract failed: GET {roles} answered 429: still refused after")
    assert "max_throttle_wait_seconds" in message
    assert not warehouse.exists(), "nothing published"


# ---------------------------------------------------------------------------------- configuration


def test_budget_share_comes_from_the_command_line_or_config(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .dlt/config.toml here
    monkeypatch.delenv("SOURCES__NEON_API_SOURCE__BUDGET_SHARE", raising=False)
    assert configuration.resolve().budget_share == settings.BUDGET_SHARE == 1.0
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__BUDGET_SHARE", "0.5")
    assert configuration.resolve().budget_share == 0.5
    assert configuration.resolve(budget_share=0.25).budget_share == 0.25, "the command line wins"
    assert cli.parser().parse_args(["extract", "--budget-share", "0.25"]).budget_share == 0.25
    for bad in ("0", "1.5", "-1"):
        monkeypatch.setenv("SOURCES__NEON_API_SOURCE__BUDGET_SHARE", bad)
        with pytest.raises(SourceConfigError, match="budget_share"):
            configuration.resolve()
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__BUDGET_SHARE", "0.5")
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__MAX_THROTTLE_WAIT_SECONDS", "90")
    monkeypatch.setenv("NEON_API_KEY", "napi_test")
    client = make_client(configuration.resolve())
    assert client.retry.max_throttle_wait == 90
    assert client.stats.rate_ceiling == pytest.approx(
        0.5 * settings.RATE_SAFETY * settings.REQUESTS_PER_MINUTE
    )


def test_the_source_on_its_own_takes_the_same_settings_as_the_runner(account, monkeypatch, tmp_path):
    """`neon_api_source()` in a user's own pipeline reads budget_share and max_throttle_wait_seconds
    as the runner does: a budget used up for longer than the wait ends the run, not ten minutes
    later (the default wait)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__BUDGET_SHARE", "0.5")
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__MAX_THROTTLE_WAIT_SECONDS", "2")
    # the account's rate FAST times Neon's, as the other tests': at Neon's own the run reads
    # for 15 s before it reaches the refused route
    monkeypatch.setenv(
        "SOURCES__NEON_API_SOURCE__REQUESTS_PER_MINUTE", str(settings.REQUESTS_PER_MINUTE * FAST)
    )
    roles = "/projects/{project_id}/branches/{branch_id}/roles"
    with Simulator(account, faults=Faults(persistent={roles: 429})) as simulator:
        pipeline = dlt.pipeline(
            "standalone",
            destination=dlt.destinations.duckdb(str(tmp_path / "own.duckdb")),
            dataset_name="neon",
        )
        source = neon_api_source(api_key=simulator.api_key, base_url=simulator.base_url, consumption=False)
        started = time.monotonic()
        with pytest.raises(Exception) as failed:
            pipeline.run(source)
        assert time.monotonic() - started < 60
    message = str(failed.value)
    assert "still refused after" in message and "max_throttle_wait_seconds" in message
