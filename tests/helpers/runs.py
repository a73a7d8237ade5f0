"""Helpers to run the pipeline against a simulator from tests."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet
import pytest
from expected import query
from neon_api_source import listings, settings
from neon_elt.run import ExtractResult, elt
from neon_simulator.live import SPENDING_LIMIT_PLANS
from neon_simulator.reference import BRANCH_CONSUMPTION_PLANS
from neon_simulator.routing import PLAIN_ROUTES
from suite import REPO, client_for

SCD2_TABLES = ("projects", "project_branches", "endpoints")


def extract(
    path: Path,
    simulator,
    *,
    transform: bool = False,
    run_at: datetime | None = None,
    source_options: dict[str, Any] | None = None,
    **client_options,
) -> ExtractResult:
    """One run of `neon-elt extract` (or `elt` with transform=True) into `path`, by default on the
    account's clock: the simulator stamps the operations of a change with it, so a run after the
    change must come after it on the same clock to see it (as a run after a change on Neon does).
    `source_options` go to the source (`full_refresh`, `hash_emails`, ...); `client_options` to
    `client_for` (`api_key`, `limiter`, retry fields)."""
    client = client_for(simulator, **client_options)
    return elt(
        path,
        client,
        do_transform=transform,
        show_progress=False,
        run_at=run_at or simulator.account.now,
        **(source_options or {}),
    )


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (now): for a server to take, or for a URL that
    refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def current_ids(warehouse: Path, table: str, key: str = "id") -> set[str]:
    return {
        row[0]
        for row in query(warehouse, f"select {key} from neon_api_data.{table} where _dlt_valid_to is null")
    }


def versions(warehouse: Path, table: str, object_id: str) -> list[tuple]:
    """(valid_from, valid_to) of every version of one object, oldest first."""
    return query(
        warehouse,
        f"select _dlt_valid_from, _dlt_valid_to from neon_api_data.{table} where id = ? order by _dlt_valid_from",
        [object_id],
    )


def table_count(warehouse: Path, table: str) -> int:
    return query(warehouse, f"select count(*) from neon_api_data.{table}")[0][0]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readable_bytes(path: Path) -> bytes:
    """The file's content as text would show it: gzip and parquet are opened, not byte-scanned."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] == b"PAR1":
        data = repr(pyarrow.parquet.read_table(path).to_pylist()).encode()
    return data


def files_holding(secrets: set[str], *places: Path) -> list[str]:
    """`path: secret` for every file given, or under the folders given, whose readable content
    holds a secret."""
    leaks = []
    for place in places:
        for path in [place] if place.is_file() else place.rglob("*"):
            if path.is_file():
                data = readable_bytes(path)
                leaks += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return leaks


def consumption_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The days a first run asks for: the last 60 days, up to the start of today (UTC)."""
    now = now or datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=settings.CONSUMPTION_HISTORY_DAYS - 1), today


def hourly_consumption_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The hours a first run asks for: the last 168 hours, up to the start of this hour (UTC)."""
    now = now or datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    return hour - timedelta(hours=settings.HOURLY_CONSUMPTION_HOURS - 1), hour


def served_hourly(account, start: datetime, end: datetime) -> dict[tuple[str, datetime, str], int]:
    """(project, hour, metric) -> value of the hourly metrics the account serves for hours that
    start within [start, end), of organizations with consumption history; zeros left out, as the
    extract leaves them out."""
    served = {}
    for project in account.all_projects():
        if project.get("org_id") not in account.plan_org_ids():
            continue
        for frame in account.consumption(project["id"], "hourly"):
            hour = datetime.fromisoformat(frame["timeframe_start"].replace("Z", "+00:00"))
            if start <= hour < end:
                for metric in settings.HOURLY_CONSUMPTION_METRICS:
                    if frame["metrics"].get(metric):
                        served[(project["id"], hour, metric)] = frame["metrics"][metric]
    return served


def expected_table_counts(account, now: datetime | None = None) -> dict[str, int]:
    """Row counts a first extract of `account` must land, per raw table, run at `now`: by default
    the account's clock, as `extract` here runs; a `neon-elt` command runs at the wall clock,
    which moves on from the account's (fixed for the test run) when the hour turns."""
    now = now or account.now
    projects = account.all_projects()
    start, end = consumption_window(now)
    pids = [p["id"] for p in projects]
    counts = {
        "organizations": len(account.organizations),
        "regions": len(account.regions),
        "projects": len(projects),
        "project_snapshots": len(projects),
        "project_branches": 0,
        "branch_snapshots": 0,
        "endpoints": 0,
        "endpoint_snapshots": 0,
        "databases": 0,
        "roles": 0,
        "operations": 0,
        "consumption": 0,
        "consumption_hourly": len(served_hourly(account, *hourly_consumption_window(now))),
        "branch_consumption": 0,
        "confirmations": len(projects),  # one per project, and one per branch (below)
        "deleted_branches": sum(len(account.deleted_branches(p["id"])) for p in projects),
        # root branches only (a first run reads every project's branch listing)
        "backup_schedules": sum(
            1 for p in projects for b in account.branches(p["id"]) if "parent_id" not in b
        ),
        "organization_spending_limits": sum(
            o["plan"] in SPENDING_LIMIT_PLANS and o["id"] in account.plan_org_ids()
            for o in account.organizations
        ),
    }
    # branch consumption: organizations on a usage-based paid plan (not Business)
    branch_plans = {
        o["id"]
        for o in account.organizations
        if o["id"] in account.plan_org_ids() and o["plan"] in BRANCH_CONSUMPTION_PLANS
    }
    for project in projects:
        pid = project["id"]
        branches = account.branches(pid)
        counts["project_branches"] += len(branches)
        counts["confirmations"] += len(branches)
        counts["branch_snapshots"] += len(branches)
        counts["endpoints"] += len(account.endpoints(pid))
        counts["endpoint_snapshots"] += len(account.endpoints(pid))
        counts["operations"] += len(account.operations(pid))
        for branch in branches:
            counts["databases"] += len(account.databases(pid, branch["id"]))
            counts["roles"] += len(account.roles(pid, branch["id"]))
        for frame in account.consumption(pid):
            day = datetime.fromisoformat(frame["timeframe_start"].replace("Z", "+00:00"))
            if start <= day < end:
                counts["consumption"] += len(frame["metrics"])
        if project.get("org_id") in branch_plans:
            for frames in account.branch_consumption(pid).values():
                for frame in frames:
                    day = datetime.fromisoformat(frame["timeframe_start"].replace("Z", "+00:00"))
                    if start <= day < end:
                        counts["branch_consumption"] += len(frame["metrics"])
    # a listing served without a handler of its own (neon_simulator.routing.PLAIN_ROUTES): its
    # records under each organization or project, as the account serves them
    for listing in listings.LISTINGS:
        if listing.route in PLAIN_ROUTES:
            parents = {listings.ORG: [o["id"] for o in account.organizations], listings.PROJECT: pids}
            counts[listing.table] = sum(
                len(account.listed_under(listing.route, pid)) for pid in parents[listing.parent]
            )
    counts.update(access_table_counts(account))
    return counts


def access_table_counts(account) -> dict[str, int]:
    """Rows of the access review's tables after a run with the account's personal key, which
    administers some organizations only (test_simulator_access.py)."""
    from expected import visible_to_the_personal_key

    projects = account.all_projects()
    visible = {o["id"]: visible_to_the_personal_key(account, o["id"]) for o in account.organizations}
    return {
        "organization_members": sum(len(account.members(org)) for org in visible),
        "organization_api_keys": sum(
            len(account.org_api_keys(org)) for org, v in visible.items() if v["api_keys"]
        ),
        "organization_vpc_endpoints": sum(
            len(account.org_vpc_endpoints(org)) for org, v in visible.items() if v["vpc_endpoints"]
        ),
        "project_permissions": sum(len(account.project_permissions(p["id"])) for p in projects),
        "project_vpc_endpoints": sum(
            len(account.project_vpc_endpoints(p["id"]))
            for p in projects
            if p.get("org_id") and visible[p["org_id"]]["vpc_endpoints"]
        ),
        "project_members": sum(len(served_project_members(account, p["id"])) for p in projects),
        # one per organization or project for each access listing
        "access_coverage": sum(
            len(visible) if listing.parent == listings.ORG else len(projects)
            for listing in listings.ACCESS_LISTINGS
        ),
    }


def served_project_members(account, project_id: str) -> list[dict]:
    """The members `GET /projects/{project_id}/members` serves the personal key: every one where
    its user is an organization admin, those with access elsewhere; none for a personal project."""
    org_id = next(p.get("org_id") for p in account.all_projects() if p["id"] == project_id)
    if org_id is None or not account.project_roles_enabled(org_id):
        return []  # Neon answers 404
    return account.project_members(project_id, see_unassigned=account.org_role(org_id) == "admin")


def landed_counts(warehouse: Path) -> dict[str, int]:
    """Rows per raw table; current versions only for the scd2 tables."""
    counts = {}
    for (table,) in query(
        warehouse,
        "select table_name from information_schema.tables where table_schema = 'neon_api_data' "
        "and table_name not like '\\_%' escape '\\'",
    ):
        where = " where _dlt_valid_to is null" if table in SCD2_TABLES else ""
        counts[table] = query(warehouse, f"select count(*) from neon_api_data.{table}{where}")[0][0]
    return counts


def cli_env(warehouse: Path, simulator=None, api_key: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `neon-elt` command run against a simulator, with quick retries and
    no client-side rate limit (the simulator enforces none unless told to)."""
    import os

    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "SOURCES__")) or k == "NEON_SIM_NOW"
    }
    env.update(
        NEON_DUCKDB_PATH=str(warehouse),
        SOURCES__NEON_API_SOURCE__REQUESTS_PER_MINUTE="0",
        SOURCES__NEON_API_SOURCE__MAX_ATTEMPTS="4",
        SOURCES__NEON_API_SOURCE__BACKOFF_BASE_SECONDS="0.02",
        SOURCES__NEON_API_SOURCE__BACKOFF_MAX_SECONDS="0.2",
        SOURCES__NEON_API_SOURCE__READ_TIMEOUT_SECONDS="3",
    )
    if simulator is not None:
        env["NEON_API_BASE_URL"] = simulator.base_url
        env["NEON_API_KEY"] = api_key or simulator.api_key
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300, **popen: Any):
    """`neon-elt <args>` in a child process, as a scheduler would run it (`popen`: more of
    subprocess.run's arguments)."""
    import subprocess
    import sys

    executable = Path(sys.executable).with_name("neon-elt")
    return subprocess.run(
        [str(executable), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, **popen
    )


# What make passes to the commands it runs: a shell outside make (a scheduler's, a newcomer's)
# has none of them (inside `make test`, MAKELEVEL makes a nested make print "Leaving directory").
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def scheduler_env(warehouse: Path, simulator=None, **extra: str) -> dict[str, str]:
    """A scheduler's environment (cron's, a CI runner's): cli_env, and no make of ours around it."""
    env = cli_env(warehouse, simulator, **extra)
    for name in MAKE_VARIABLES:
        env.pop(name, None)
    return env


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/api/v2"


def checkout(folder: Path) -> Path:
    """The files a clone of the project has at its root, as a newcomer or a scheduler sees one,
    sharing this one's environment (.venv)."""
    if subprocess.run(["make", "-q", "env"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.fail(".venv is not up to date with uv.lock: run `make env` first")
    folder.mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "uv.lock", ".venv", "neon_api_pipeline.py", "notebooks"):
        (folder / name).symlink_to(REPO / name)
    (folder / ".dlt").mkdir()
    (folder / ".dlt" / "config.toml").symlink_to(REPO / ".dlt" / "config.toml")
    return folder


class Stub:
    """An HTTP server answering each request with the next of `answers` (status, headers, body),
    the last one for good: what a broken proxy or a hostile server sends."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]):
        self.answers = list(answers)
        self.requests = 0
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                stub.requests += 1
                status, headers, body = stub.answers.pop(0) if len(stub.answers) > 1 else stub.answers[0]
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2"

    def __enter__(self) -> Stub:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def key_leaks(key: str, *outputs: str) -> list[str]:
    """Any run of 6 characters of the key's secret part that an output shows."""
    secret = key.removeprefix("napi_")
    return [secret[i : i + 6] for i in range(len(secret) - 5) if any(secret[i : i + 6] in o for o in outputs)]
