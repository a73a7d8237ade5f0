"""Where the warehouse lives: a DuckDB file (the default) or a shared PostgreSQL database.

A target opens a *build* for a run: what dlt loads into and what dbt builds in.

- DuckDB: the build is a private working copy of the file, published with an atomic rename when
  the run succeeds (see warehouse.py), so readers never see a half-built warehouse.
- PostgreSQL: the build is the database itself. PostgreSQL lets readers and the writer work at
  once; dlt loads each table in a transaction and dbt swaps each mart in with a rename, so a reader
  sees a whole table, old or new (a failed run can leave some marts newer than others).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.runtime import run_context
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from . import config, memory
from .warehouse import WarehouseBusy, working_copy

ORIGIN_TABLE = f"{config.DATASET_NAME}._neon_elt_origin"
# pg_advisory_lock key of a run on a PostgreSQL warehouse: a fixed 64-bit number, "neon-elt" in hex.
ADVISORY_LOCK_KEY = 0x6E656F6E2D656C74


@dataclass
class DuckDBBuild:
    """A working copy of the DuckDB warehouse."""

    path: Path
    dbt_target: str = "duckdb"
    # DuckDB reads parquet load files in bulk, several times faster than dlt's default INSERT
    # statements on a first run.
    loader_file_format: str | None = "parquet"

    @property
    def identity(self) -> str:
        """The warehouse, for its dlt folder (run.pipelines_dir): the working copy's path, which
        is one per published file."""
        return str(self.path.resolve())

    def destination(self) -> Any:
        return dlt.destinations.duckdb(self.load_credentials(1))

    def load_credentials(self, load_workers: int) -> DuckDbCredentials:
        """The warehouse's credentials for a load on `load_workers` workers (their memory budget)."""
        return DuckDbCredentials(str(self.path), global_config=memory.duckdb_load_config(load_workers))

    def dbt_env(self) -> dict[str, str]:
        # The file's name only, dbt running in its folder (dbt_cwd): dbt parses the project again
        # whenever the profile's path changes, and each warehouse has a working copy of its own.
        return {"NEON_DUCKDB_PATH": self.path.name}

    @property
    def dbt_cwd(self) -> Path:
        return self.path.parent

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Query results as dicts, over a read-only connection."""
        connection = duckdb.connect(str(self.path), read_only=True)
        try:
            cursor = connection.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()

    def read_origin(self) -> str | None:
        """Which API this warehouse was loaded from, if it was loaded yet."""
        if not self.path.exists():
            return None
        connection = duckdb.connect(str(self.path), read_only=True)
        try:
            rows = connection.execute(f"select origin from {ORIGIN_TABLE}").fetchall()
        except duckdb.CatalogException:  # a warehouse from before the first extract
            rows = []
        finally:
            connection.close()
        return rows[0][0] if rows else None

    isolated = True  # a working copy: nothing reaches readers before it is published
    mixing_remedy = "Delete the file or set NEON_DUCKDB_PATH to another one to keep the two apart"

    def record_origin(self, origin: str) -> None:
        connection = duckdb.connect(str(self.path))
        try:
            connection.execute(f"create table if not exists {ORIGIN_TABLE} (origin varchar not null)")
            connection.execute(f"delete from {ORIGIN_TABLE}")
            connection.execute(f"insert into {ORIGIN_TABLE} values (?)", [origin])
        finally:
            connection.close()


def run_folders() -> list[Path]:
    """The folders a run writes in besides the warehouse's: dlt's data, dbt's target and logs."""
    dbt_dir = config.DBT_PROJECT_DIR
    return [
        Path(run_context.active().data_dir),
        config.dbt_target_path(),
        Path(os.environ.get("DBT_LOG_PATH") or dbt_dir / "logs"),
    ]


class DuckDBTarget:
    name = "duckdb"

    def __init__(self, path: Path):
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def direct(self) -> DuckDBBuild:
        """The published file itself, for readers (docs, report); never written through."""
        return DuckDBBuild(self.path)

    @contextmanager
    def build(self, publish: bool = True) -> Iterator[DuckDBBuild]:
        """A working copy, published if the block succeeds (and `publish`), else thrown away."""
        with working_copy(self.path, publish=publish, also_writes=run_folders()) as working:
            yield DuckDBBuild(working)


@dataclass
class PostgresBuild:
    credentials: config.PostgresCredentials
    dbt_target: str = "postgres"
    # dlt's own choice: INSERT statements, and COPY from csv for Arrow tables (consumption).
    # Parquet would need the ADBC driver, and without it dlt warns for every table.
    loader_file_format: str | None = None

    @property
    def identity(self) -> str:
        """The database, for its dlt folder (run.pipelines_dir); never the password."""
        return self.credentials.safe_url

    def destination(self) -> Any:
        return dlt.destinations.postgres(credentials=self.credentials.url)

    def load_credentials(self, load_workers: int) -> None:
        """The pipeline's own: the server keeps its memory."""
        return None

    @property
    def dbt_cwd(self) -> Path:
        return config.DBT_PROJECT_DIR

    def dbt_env(self) -> dict[str, str]:
        """dbt's profile reads these. An empty password makes libpq look in the password file,
        as dlt's connections and ours do."""
        c = self.credentials
        return {
            "NEON_PG_HOST": c.host,
            "NEON_PG_PORT": str(c.port),
            "NEON_PG_USER": c.user,
            "NEON_PG_PASSWORD": c.password,
            "NEON_PG_DATABASE": c.database,
            "NEON_PG_SSLMODE": c.sslmode,
        }

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Query results as dicts, in a read-only transaction."""
        import psycopg2.extras

        connection = self._connect()
        try:
            connection.set_session(readonly=True)
            with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(sql)
                return [dict(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    isolated = False  # loads land in place, so the origin is checked before any load
    mixing_remedy = (
        "Use another database (NEON_POSTGRES_URL), or drop the schemas neon_api_data, "
        "staging and marts, to keep the two apart"
    )

    def _connect(self):
        import psycopg2

        try:
            return psycopg2.connect(self.credentials.url, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            cause = (str(exc).strip().splitlines() or ["unknown error"])[0]
            raise config.ConfigError(
                f"cannot connect to PostgreSQL at {self.credentials.safe_url} "
                f"({self.credentials.describe_sources()}): {' '.join(cause.split())}"
            ) from None

    def read_origin(self) -> str | None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("select to_regclass(%s)", [ORIGIN_TABLE])
                if cursor.fetchone()[0] is None:  # before the first extract
                    return None
                cursor.execute(f"select origin from {ORIGIN_TABLE}")
                row = cursor.fetchone()
                return row[0] if row else None
        finally:
            connection.close()

    def record_origin(self, origin: str) -> None:
        connection = self._connect()
        try:
            with connection, connection.cursor() as cursor:  # one transaction
                cursor.execute(f"create schema if not exists {config.DATASET_NAME}")
                cursor.execute(f"create table if not exists {ORIGIN_TABLE} (origin text not null)")
                cursor.execute(f"delete from {ORIGIN_TABLE}")
                cursor.execute(f"insert into {ORIGIN_TABLE} values (%s)", [origin])
        finally:
            connection.close()


class PostgresTarget:
    name = "postgres"

    def __init__(self, credentials: config.PostgresCredentials):
        self.credentials = credentials

    def describe(self) -> str:
        return self.credentials.safe_url

    def exists(self) -> bool:
        """Whether dlt has loaded this database yet. Connects, so a wrong password or an
        unreachable server is reported here, in one line, before anything starts."""
        connection = PostgresBuild(self.credentials)._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("select to_regclass(%s)", [f"{config.DATASET_NAME}._dlt_loads"])
                return cursor.fetchone()[0] is not None
        finally:
            connection.close()

    def check(self) -> None:
        """Connect once, so that a wrong password or an unreachable server is one line before
        dbt starts, not dbt's own report of it."""
        PostgresBuild(self.credentials)._connect().close()

    def direct(self) -> PostgresBuild:
        return PostgresBuild(self.credentials)

    @contextmanager
    def build(self, publish: bool = True) -> Iterator[PostgresBuild]:
        """The database itself, while this run holds an advisory lock on it: a second scheduled
        run stops at once instead of loading over the first (as DuckDB's lock file does). Loads
        land in place, so `publish=False` is for runs that load nothing (a plan)."""
        build = PostgresBuild(self.credentials)
        connection = build._connect()
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("select pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    raise WarehouseBusy(
                        f"another run is writing {self.credentials.safe_url}; try again when it ends"
                    )
            yield build
        finally:
            connection.close()  # ends the session, which releases the lock


# How to make a warehouse, for every message that finds none to read.
MAKE_ONE = "run `make demo` or `make elt` first"


def no_warehouse(where: str) -> str:
    """The one message for a warehouse that is not there: where it was looked for, how to make one."""
    return f"no warehouse at {where}: {MAKE_ONE}"


def existing(target: DuckDBTarget | PostgresTarget) -> DuckDBTarget | PostgresTarget:
    """The target, if it holds a warehouse; else the message that says how to make one."""
    if not target.exists():
        raise config.ConfigError(no_warehouse(target.describe()))
    return target


def from_config(name: str | None = None) -> DuckDBTarget | PostgresTarget:
    name = (name or config.target_name()).lower()
    if name == "duckdb":
        return DuckDBTarget(config.warehouse_path())
    if name == "postgres":
        return PostgresTarget(config.postgres_credentials())
    raise config.ConfigError(f"unknown target {name!r}: use duckdb or postgres")
