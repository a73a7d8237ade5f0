"""dlt's dashboard and the analysts' notebook: two marimo apps on the published DuckDB warehouse.

- `make dashboard` (`neon-elt dashboard`) serves dlt's own dashboard, the one dltHub's page opens
  with `dlt pipeline neon_api_pipeline show`: the last run, the schema, and a data browser over
  the raw tables of `neon_api_data`.
- `make notebook` (`neon-elt notebook`) opens notebooks/neon_estate.py, the notebook of the dbt
  exposure `estate_notebook`, which walks through the marts.

Both read the warehouse the runner publishes (NEON_DUCKDB_PATH, else neon_api_pipeline.duckdb)
over read-only connections, so they never stand in the way of a run or of other readers. Both
need the optional dependency group `dashboard` (marimo, ibis-framework), which the two
make targets install on first use and `make env` leaves out.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple, NoReturn

from . import config, targets

NOTEBOOK = config.ROOT / "notebooks" / "neon_estate.py"
# marimo's own default port serves dlt's dashboard, as `dlt pipeline … show` does; the notebook
# takes the next one, so that both can run at once.
DASHBOARD_PORT = 2718
NOTEBOOK_PORT = 2719
# What the dashboard group brings, by import name; dlt's dashboard refuses to start without them.
GROUP_MODULES = ("marimo", "ibis")


class App(NamedTuple):
    """A marimo server to become: its command line, environment, and a line for the user."""

    command: list[str]
    env: dict[str, str]
    banner: str


def require_group(what: str) -> None:
    missing = [name for name in GROUP_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise config.ConfigError(
            f"{what} needs the optional dependency group `dashboard` ({', '.join(missing)} not "
            "installed): `make dashboard` or `make notebook` installs it, as does "
            "`uv sync --group dashboard`"
        )


def published_warehouse() -> Path:
    """The DuckDB warehouse the runner publishes; it must exist."""
    target = targets.from_config()
    if not isinstance(target, targets.DuckDBTarget):
        raise config.ConfigError(
            "the dashboard and the notebook read the DuckDB warehouse; with TARGET=postgres, query "
            "the marts in PostgreSQL (docs/postgres.md)"
        )
    targets.existing(target)
    if not config.holds_a_load(target.path):
        # dlt leaves an empty file where its dataset is opened before any run.
        raise config.ConfigError(
            f"{target.describe()} holds no load yet (dlt leaves an empty file where its dataset is "
            f"opened before a run): {targets.MAKE_ONE}"
        )
    return target.path


def app_env(**extra: str) -> dict[str, str]:
    """The apps' environment: no secrets of ours (config.SECRET_ENV), and no look for marimo
    updates on PyPI."""
    env = config.environ_without_secrets()
    env["MARIMO_SKIP_UPDATE_CHECK"] = "1"
    env.update(extra)
    return env


def marimo() -> str:
    """The marimo of this environment: dlt starts `marimo` from PATH, which holds it only where
    the environment is activated."""
    return str(Path(sys.executable).with_name("marimo"))


def dashboard(port: int) -> App:
    """dlt's dashboard of the pipeline, as `dlt pipeline neon_api_pipeline show` starts it, but
    on the published warehouse, read-only, on 127.0.0.1:`port`, without opening a browser."""
    require_group("dlt's dashboard")
    warehouse = published_warehouse()
    config.check_port_free(port, "make dashboard PORT=2720")
    env = app_env(
        # dlt reads destination settings from the environment too: the warehouse wherever
        # NEON_DUCKDB_PATH puts it, opened read-only.
        DESTINATION__DUCKDB__CREDENTIALS__DATABASE=str(warehouse),
        DESTINATION__DUCKDB__CREDENTIALS__READ_ONLY="true",
    )
    restore_local_state(warehouse)
    from dlt._workspace.helpers.dashboard.runner import run_dashboard_command

    command = run_dashboard_command(config.PIPELINE_NAME, port=port, host="127.0.0.1", headless=True)
    return App(
        [marimo(), *command[1:]],
        env,
        f"dlt's dashboard of {config.PIPELINE_NAME} on http://127.0.0.1:{port}, {warehouse} read-only",
    )


def restore_local_state(warehouse: Path) -> None:
    """The dashboard shows the pipeline's local state (in ~/.dlt/pipelines). Runs keep theirs in a
    folder per warehouse (run.pipelines_dir), so take the state and schema from this warehouse,
    as `dlt pipeline … sync` would."""
    import dlt
    from dlt.common.pipeline import get_dlt_pipelines_dir
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    folder = Path(get_dlt_pipelines_dir()) / config.PIPELINE_NAME
    shutil.rmtree(folder, ignore_errors=True)  # as a run does: a state left for another warehouse
    pipeline = dlt.pipeline(
        pipeline_name=config.PIPELINE_NAME,
        destination=dlt.destinations.duckdb(DuckDbCredentials(str(warehouse), read_only=True)),
        dataset_name=config.DATASET_NAME,
    )
    pipeline.sync_destination()


def notebook(port: int) -> App:
    """marimo's editor on the analysts' notebook, on 127.0.0.1:`port`, without opening a browser.
    The notebook reads the warehouse resolved here (NEON_DUCKDB_PATH in its environment)."""
    require_group("the notebook")
    warehouse = published_warehouse()
    config.check_port_free(port, "make notebook PORT=2720")
    return App(
        [marimo(), "edit", str(NOTEBOOK), "--host", "127.0.0.1", "--port", str(port), "--headless"],
        app_env(NEON_DUCKDB_PATH=str(warehouse)),
        f"The estate notebook on {warehouse} read-only; open the address marimo prints",
    )


def serve(app: App) -> NoReturn:
    """Become the server (exec), so that Ctrl-C or a signal reaches marimo itself."""
    print(f"{app.banner}; Ctrl-C stops it.", flush=True)
    os.execve(app.command[0], app.command, app.env)
