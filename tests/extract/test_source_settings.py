"""A standalone `neon_api_source()` in a user's own pipeline takes its settings as the runner does,
first found wins: its arguments, then the aliases NEON_API_KEY and NEON_API_BASE_URL, then dlt's
providers (neon_api_source/configuration.py). A rejected key is named by where it came from.

Each test extracts a `plan_only` source: the requests that read the signals, nothing loaded. The
rejected keys are tried in a new process each, as a user runs a pipeline: dlt reads
.dlt/secrets.toml once per process."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import dlt
import pytest
from neon_api_source import neon_api_source
from neon_simulator import PRESETS, Account, Simulator
from runs import free_port

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

WRONG_KEY = "napi_not_this_accounts_key"


@pytest.fixture(scope="module")
def account() -> Account:
    return Account.generate(dataclasses.replace(PRESETS["demo"], projects=3, seed=14))


@pytest.fixture
def user(monkeypatch, tmp_path):
    """A user's folder and environment: none of our settings, one attempt per request, no limiter."""
    for name in list(os.environ):
        if name.startswith(("NEON_", "SOURCES__")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__REQUESTS_PER_MINUTE", "0")
    monkeypatch.setenv("SOURCES__NEON_API_SOURCE__MAX_ATTEMPTS", "1")
    return monkeypatch


STANDALONE = """
import json, sys, dlt
from neon_api_source import neon_api_source
pipeline = dlt.pipeline("standalone", destination=dlt.destinations.duckdb("own.duckdb"), dataset_name="neon")
pipeline.extract(neon_api_source(plan_only=True, **json.loads(sys.argv[1])))
"""


def extract(source, folder) -> None:
    pipeline = dlt.pipeline(
        "standalone", destination=dlt.destinations.duckdb(str(folder / "own.duckdb")), dataset_name="neon"
    )
    pipeline.extract(source)


@pytest.mark.parametrize("alias", ["NEON_API_KEY", "NEON_API_BASE_URL"])
def test_an_argument_wins_over_its_exported_alias(alias, account, user, tmp_path):
    """A key or URL exported for another run does not override the one the call names."""
    exported = {"NEON_API_KEY": WRONG_KEY, "NEON_API_BASE_URL": f"http://127.0.0.1:{free_port()}/api/v2"}
    user.setenv(alias, exported[alias])
    with Simulator(account) as simulator:
        extract(
            neon_api_source(api_key=simulator.api_key, base_url=simulator.base_url, plan_only=True), tmp_path
        )
        assert simulator.stats.total > 0


def test_an_alias_wins_over_dlt_s_providers(account, user, tmp_path):
    user.setenv("SOURCES__NEON_API_SOURCE__API_KEY", WRONG_KEY)
    user.setenv("SOURCES__NEON_API_SOURCE__BASE_URL", f"http://127.0.0.1:{free_port()}/api/v2")
    with Simulator(account) as simulator:
        user.setenv("NEON_API_KEY", simulator.api_key)
        user.setenv("NEON_API_BASE_URL", simulator.base_url)
        extract(neon_api_source(plan_only=True), tmp_path)
        assert simulator.stats.total > 0


@pytest.mark.parametrize(
    "where, named",
    [
        ("argument", "the api_key argument"),
        ("NEON_API_KEY", "the NEON_API_KEY environment variable"),
        ("SOURCES__NEON_API_SOURCE__API_KEY", "the SOURCES__NEON_API_SOURCE__API_KEY environment variable"),
        ("secrets.toml", "[sources.neon_api_source] api_key in .dlt/secrets.toml"),
    ],
)
def test_a_rejected_key_is_named_by_where_it_came_from(where, named, account, user, tmp_path):
    given = {}
    if where == "argument":
        given["api_key"] = WRONG_KEY
    elif where == "secrets.toml":
        (tmp_path / ".dlt").mkdir()
        (tmp_path / ".dlt" / "secrets.toml").write_text(
            f'[sources.neon_api_source]\napi_key = "{WRONG_KEY}"\n'
        )
    else:
        user.setenv(where, WRONG_KEY)
    with Simulator(account) as simulator:
        given["base_url"] = simulator.base_url
        run = subprocess.run(
            [sys.executable, "-c", STANDALONE, json.dumps(given)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert simulator.stats.total == 1, "a 401 is not retried"
    assert run.returncode != 0
    assert f"Neon rejected the API key from {named}:" in run.stderr


def test_a_misspelt_setting_is_refused_not_ignored():
    with pytest.raises(TypeError, match="has no setting budget_shares"):
        neon_api_source(api_key="napi_any", budget_shares=0.5)
