"""Shared fixtures: a simulated Neon account, the simulator serving it, and a warehouse built from
it once per session (extract + dbt build), so that every mart test reads the same real run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Keep dlt's pipeline folders and dbt's output of the test session away from the user's.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="neon-elt-tests-"))
os.environ["DLT_DATA_DIR"] = str(_SESSION_DIR / "dlt")
os.environ["DBT_TARGET_PATH"] = str(_SESSION_DIR / "dbt-target")
os.environ["DBT_LOG_PATH"] = str(_SESSION_DIR / "dbt-logs")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
for _name in ("NEON_API_KEY", "NEON_API_BASE_URL", "NEON_DUCKDB_PATH", "SOURCES__NEON_API_SOURCE__API_KEY"):
    os.environ.pop(_name, None)

from neon_api_source.configuration import NeonApiSourceConfiguration, make_client  # noqa: E402
from neon_api_source.helpers import NeonClient  # noqa: E402
from neon_elt.run import elt  # noqa: E402
from neon_simulator import PRESETS, Account, Simulator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


def client_for(simulator: Simulator, api_key: str | None = None, limiter=None, **retry) -> NeonClient:
    """The client for a simulator, built as every client is (configuration.make_client): no rate
    limit unless `limiter` is given, and retries as in production but with short backoff, so that
    fault tests stay quick. `retry` overrides RetryPolicy's fields (`max_attempts`, `read_timeout`)."""
    retry = {"backoff_base": 0.02, "backoff_max": 0.2, "read_timeout": 5.0, **retry}
    settings = NeonApiSourceConfiguration(
        api_key=api_key or simulator.api_key,
        base_url=simulator.base_url,
        requests_per_minute=0,
        **{name if name == "max_attempts" else f"{name}_seconds": value for name, value in retry.items()},
    )
    return make_client(settings, key_source="the test simulator key", limiter=limiter)


@pytest.fixture(scope="session")
def demo_account() -> Account:
    return Account.generate(PRESETS["demo"])


@pytest.fixture(scope="session")
def demo_warehouse(demo_account, session_dir) -> Path:
    """The demo account, extracted and built into a warehouse once per session."""
    path = session_dir / "demo" / "neon_api.duckdb"
    path.parent.mkdir()
    with Simulator(demo_account) as simulator:
        elt(path, client_for(simulator), show_progress=False, unit_tests=True)
    return path
