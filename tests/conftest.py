"""Shared fixtures: a simulated Neon account, the simulator serving it, and a warehouse built from
it once per test run (extract + dbt build), shared by every xdist worker, so that every mart test
reads the same real run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

# Keep dlt's pipeline folders and dbt's output of the test session away from the user's; removed
# when the session ends (pytest_sessionfinish), since a make test's dbt logs alone are ~90 MB.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="neon-elt-tests-"))
os.environ["DLT_DATA_DIR"] = str(_SESSION_DIR / "dlt")
os.environ["DBT_TARGET_PATH"] = str(_SESSION_DIR / "dbt-target")
os.environ["DBT_LOG_PATH"] = str(_SESSION_DIR / "dbt-logs")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
for _name in ("NEON_API_KEY", "NEON_API_BASE_URL", "NEON_DUCKDB_PATH", "SOURCES__NEON_API_SOURCE__API_KEY"):
    os.environ.pop(_name, None)

from neon_elt.run import elt  # noqa: E402
from neon_simulator import PRESETS, Account, Simulator  # noqa: E402
from neon_simulator.timestamps import default_clock  # noqa: E402
from suite import built_once, client_for  # noqa: E402

# One account clock for the whole run, which xdist's workers and the runs they start inherit: an
# hour that turns mid-run would otherwise give them the "same" account an hour apart.
os.environ.setdefault("NEON_SIM_NOW", default_clock().isoformat())


def pytest_sessionfinish(session) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_account() -> Account:
    return Account.generate(PRESETS["demo"])


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder all xdist workers of this test run see (their basetemps' common parent), and only
    they: another run, or another user's, has its own."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def demo_build(demo_account, shared_dir) -> SimpleNamespace:
    """The demo account, extracted and built (dbt's unit tests too) once per test run: the
    warehouse, the dlt folder the run left (`dlt_dir`) and dbt's target folder (`dbt_target`, its
    manifest). Tests only read them; a test that writes works on a copy."""

    def build(folder: Path) -> None:
        with _environ(DLT_DATA_DIR=str(folder / "dlt"), DBT_TARGET_PATH=str(folder / "dbt-target")):
            with Simulator(demo_account) as simulator:
                elt(folder / "neon_api.duckdb", client_for(simulator), show_progress=False, unit_tests=True)

    folder = built_once(shared_dir, "demo", build)
    # dbt reads the project as this build parsed it in every build after it (dbt's partial parse):
    # a test's fresh target folder would parse it all again, a third of a build's CPU.
    os.environ["DBT_PARTIAL_PARSE_FILE_PATH"] = str(folder / "dbt-target" / "partial_parse.msgpack")
    return SimpleNamespace(
        warehouse=folder / "neon_api.duckdb", dlt_dir=folder / "dlt", dbt_target=folder / "dbt-target"
    )


@pytest.fixture(scope="session")
def demo_warehouse(demo_build) -> Path:
    """The shared demo warehouse (demo_build): read it, or copy it to change it."""
    return demo_build.warehouse
