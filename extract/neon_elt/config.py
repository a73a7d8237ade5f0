"""Where the runner's settings come from.

The source's settings (the key, the API's URL, tuning, email hashing) are dlt's to resolve, for
the runner as for a standalone `neon_api_source()`: neon_api_source/configuration.py says from
where, with `NEON_API_KEY` and `NEON_API_BASE_URL` as its two aliases. This module resolves the
rest, which belongs to the runner:

| setting            | environment          | dlt config / secrets                         | default            |
|--------------------|----------------------|----------------------------------------------|--------------------|
| warehouse file     | `NEON_DUCKDB_PATH`   |                                              | `neon_api_pipeline.duckdb` |
| stale threshold    | `NEON_STALE_AFTER_DAYS` | (dbt var `stale_after_days`)              | dbt_project.yml's  |
| warehouse kind     | `NEON_ELT_TARGET`    |                                              | `duckdb`           |
| PostgreSQL         | `NEON_POSTGRES_URL`, `PG*` | `[destination.postgres] credentials` (secrets) | libpq defaults |
| its password       | in the URL, `PGPASSWORD`, `PGPASSFILE` | in `credentials` | `~/.pgpass` (libpq reads it) |
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import dlt
from dlt.destinations.impl.duckdb.configuration import DUCK_DB_NAME_PAT
from neon_api_source.configuration import describe_error

from .warehouse import FAULT_ERRNOS, MachineFault, describe_fault

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = ROOT / "dbt_project"
PIPELINE_NAME = "neon_api_pipeline"
DATASET_NAME = "neon_api_data"
# The file dlt's duckdb destination opens for this pipeline when it is given no path: the
# pipeline's name + .duckdb in the working folder. Publishing there lets dltHub's page's habits,
# `dlt.pipeline("neon_api_pipeline").dataset()` and `dlt pipeline neon_api_pipeline show`, read the
# warehouse unchanged from the repository root.
DEFAULT_WAREHOUSE = DUCK_DB_NAME_PAT % PIPELINE_NAME
# Environment variables that carry secrets: never passed on to a process we start that does not
# need them (dbt, marimo's apps).
SECRET_ENV = (
    "NEON_API_KEY",
    "SOURCES__NEON_API_SOURCE__API_KEY",
    "SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT",
)


def environ_without_secrets() -> dict[str, str]:
    """This process's environment but SECRET_ENV: for a process we start that does not need them."""
    return {name: value for name, value in os.environ.items() if name not in SECRET_ENV}


# The warehouse's former default name: a warehouse under it stays in use, with a notice, until it
# is moved (default_warehouse).
OLD_DEFAULT_WAREHOUSE = "neon_api.duckdb"


def dbt_target_path() -> Path:
    """dbt's target folder (manifest, run results, docs): DBT_TARGET_PATH, dbt's own variable, else
    the project's target/."""
    return Path(os.environ.get("DBT_TARGET_PATH") or DBT_PROJECT_DIR / "target")


class ConfigError(Exception):
    """Bad or missing configuration of the runner: printed as one line, exit code 2, nothing
    touched. The source's settings raise their own SourceConfigError, which the command line
    treats the same way."""


def warehouse_path() -> Path:
    """The DuckDB warehouse file, checked before anything runs."""
    raw = os.environ.get("NEON_DUCKDB_PATH") or default_warehouse()
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise ConfigError(f"NEON_DUCKDB_PATH={raw} is a directory; it must name a DuckDB file")
    if any(quote in str(path) for quote in "'\""):  # dbt's profile and SQL name the file: before any work
        raise ConfigError(
            f"NEON_DUCKDB_PATH={raw}: the path has a quote, which DuckDB and dbt cannot take; rename it"
        )
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"NEON_DUCKDB_PATH={raw}: the folder {parent} does not exist")
    _probe_writable(parent, f"NEON_DUCKDB_PATH={raw}")
    if path.exists() and not os.access(path, os.R_OK):
        raise ConfigError(f"NEON_DUCKDB_PATH={raw}: the file is not readable")
    return path


def default_warehouse() -> str:
    """dlt's file for the pipeline, unless the warehouse here still has its old name: then that
    one, with a notice, so that an upgrade never starts an empty warehouse beside a full one (a
    full re-read, and its history left behind). The new file counts only if a run published into
    it: dlt creates an empty one when its dataset is opened where there is none."""
    if Path(OLD_DEFAULT_WAREHOUSE).is_file() and not holds_a_load(Path(DEFAULT_WAREHOUSE)):
        print(
            f"neon-elt: the warehouse is still {OLD_DEFAULT_WAREHOUSE}, its old name; dlt and its "
            f"dashboard look for {DEFAULT_WAREHOUSE}. To move it: mv {OLD_DEFAULT_WAREHOUSE} "
            f"{DEFAULT_WAREHOUSE} && make transform",
            file=sys.stderr,
        )
        return OLD_DEFAULT_WAREHOUSE
    return DEFAULT_WAREHOUSE


def holds_a_load(path: Path) -> bool:
    """Whether dlt has loaded the raw dataset into this DuckDB file."""
    if not path.is_file():
        return False
    import duckdb

    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # held by a writer, or not DuckDB: keep to the old file, which is known
        return False
    try:
        return bool(
            connection.execute(
                "select 1 from information_schema.tables "
                f"where table_schema = '{DATASET_NAME}' and table_name = '_dlt_loads'"
            ).fetchall()
        )
    finally:
        connection.close()


def report_path(raw: str) -> Path:
    """Where `neon-elt report --output` writes, checked before the report is built. Its folder is
    created if missing (reports/ in a fresh clone)."""
    path = Path(raw).expanduser()
    if path.is_dir():
        raise ConfigError(f"--output {raw} is a directory; it must name an .html file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--output {raw}: cannot create the folder {path.parent} ({exc.strerror})"
        ) from None
    _probe_writable(path.parent, f"--output {raw}")
    return path


def check_port_free(port: int, remedy: str, what: str = "") -> None:
    """Refuse a port already taken, before serving: dbt's docs server would fail only after the
    docs are generated (with a traceback), and marimo would pick another port by itself, so the
    printed address would be wrong."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            served = f"{what} " if what else ""
            raise ConfigError(
                f"cannot serve {served}on 127.0.0.1:{port} ({exc.strerror}): choose another port, e.g. {remedy}"
            ) from None


def _probe_writable(folder: Path, setting: str) -> None:
    """A real probe: permission bits say nothing for root or on read-only file systems."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".neon-elt-probe-"):
            pass
    except OSError as exc:
        if exc.errno in FAULT_ERRNOS:  # the machine's fault (read-only, full), not the setting's
            raise MachineFault(f"{describe_fault(exc.errno, folder)}; nothing was read or written") from None
        raise ConfigError(f"{setting}: cannot write in {folder} ({exc.strerror})") from None


def _secret(key: str):
    """A value from dlt's secrets (`.dlt/secrets.toml` or its env names); a file dlt cannot parse
    is one line that names it, worded as for the source's settings."""
    try:
        return dlt.secrets.get(key)
    except Exception as exc:
        raise ConfigError(describe_error(exc)) from None


def stale_after_days(option: int | None = None) -> int | None:
    """dbt's `stale_after_days` for this run: the command-line option, else NEON_STALE_AFTER_DAYS,
    else None (the project's default, in dbt_project.yml)."""
    raw = option if option is not None else os.environ.get("NEON_STALE_AFTER_DAYS", "").strip() or None
    if raw is None:
        return None
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"stale_after_days must be a whole number of days, 1 or more (got {raw!r})")
    return days


# --------------------------------------------------------------------------------------- targets


def target_name() -> str:
    """`duckdb` (default) or `postgres`, from NEON_ELT_TARGET (the Makefile's TARGET=)."""
    return (os.environ.get("NEON_ELT_TARGET") or "duckdb").strip().lower()


# libpq's defaults, where neither a URL nor its variables say otherwise.
LIBPQ_HOST = "localhost"
LIBPQ_PORT = 5432
LIBPQ_SSLMODE = "prefer"  # a Neon database wants `require` (its URLs say so)


def _sslmode(given: str | None = None) -> str:
    """The SSL mode as libpq takes it: the one given, else PGSSLMODE, else libpq's default."""
    return given or os.environ.get("PGSSLMODE") or LIBPQ_SSLMODE


@dataclass(frozen=True)
class PostgresCredentials:
    host: str
    port: int
    user: str
    password: str  # empty: libpq looks in the password file (PGPASSFILE or ~/.pgpass) when it connects
    database: str
    source: str
    sslmode: str = LIBPQ_SSLMODE
    password_source: str | None = None  # None: no password found, libpq connects without one

    @property
    def url(self) -> str:
        """The libpq URL for dlt and psycopg2. Always `user:password@`, the password empty when
        none was given: dlt then accepts the URL as complete, and libpq, which reads an empty one
        as none, looks it up in the password file itself. We never open that file."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return (
            f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"
            f"?sslmode={quote(self.sslmode, safe='')}"
        )

    @property
    def safe_url(self) -> str:
        """The URL for messages: never the password."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def describe_sources(self) -> str:
        """Where the settings and the password came from, for messages."""
        if self.password_source is None:
            return (
                f"settings from {self.source}, no password given: put one in the URL, PGPASSWORD, "
                "~/.pgpass or [destination.postgres] in .dlt/secrets.toml"
            )
        return f"settings from {self.source}, password from {self.password_source}"

    def __repr__(self) -> str:
        return f"PostgresCredentials({self.safe_url!r}, {self.describe_sources()})"


def postgres_credentials() -> PostgresCredentials:
    """PostgreSQL connection for TARGET=postgres. The settings come from the first of:
    NEON_POSTGRES_URL (a libpq URL), `[destination.postgres] credentials` in .dlt/secrets.toml
    (dlt's own name, a URL or its parts), or libpq's variables PGHOST, PGPORT, PGUSER, PGDATABASE,
    PGSSLMODE. The password in libpq's order: the one given with those settings, else
    PGPASSWORD, else the password file (PGPASSFILE, else ~/.pgpass), which libpq reads itself."""
    url = os.environ.get("NEON_POSTGRES_URL", "").strip()
    if url:
        return _parse_postgres_url(url, "NEON_POSTGRES_URL")
    secret = _secret("destination.postgres.credentials")
    source = "[destination.postgres] credentials"
    if isinstance(secret, str) and secret.strip():
        return _parse_postgres_url(secret.strip(), source)
    if hasattr(secret, "get"):
        return _credentials(
            host=str(secret.get("host") or LIBPQ_HOST),
            port=_port(secret.get("port"), f"port in {source}"),
            user=str(secret.get("username") or secret.get("user") or getpass.getuser()),
            password=str(secret.get("password") or ""),
            database=str(secret.get("database") or secret.get("dbname") or "postgres"),
            source=source,
            sslmode=_sslmode(str(secret.get("sslmode") or "")),
        )
    user = os.environ.get("PGUSER") or getpass.getuser()
    return _credentials(
        host=os.environ.get("PGHOST") or LIBPQ_HOST,
        port=_port(os.environ.get("PGPORT"), "PGPORT"),
        user=user,
        password="",
        database=os.environ.get("PGDATABASE") or user,
        source="the PG* environment variables",
        sslmode=_sslmode(),
    )


def _credentials(*, password: str, source: str, **settings) -> PostgresCredentials:
    """The credentials with the password libpq would use: the one given with the settings, else
    PGPASSWORD (it is in the environment dlt and dbt inherit anyway), else none, and libpq looks
    in the password file when it connects."""
    if password:
        return PostgresCredentials(password=password, source=source, password_source=source, **settings)
    if os.environ.get("PGPASSWORD"):
        return PostgresCredentials(
            password=os.environ["PGPASSWORD"], source=source, password_source="PGPASSWORD", **settings
        )
    passfile = os.environ.get("PGPASSFILE")
    if passfile:
        found = f"the password file PGPASSFILE={passfile}"
    elif (Path.home() / ".pgpass").is_file():
        found = "the password file ~/.pgpass"
    else:
        found = None
    return PostgresCredentials(password="", source=source, password_source=found, **settings)


def _port(value, source: str) -> int:
    if value is None or value == "":
        return LIBPQ_PORT
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{source}: {value!r} is not a port number")
    return port


def _parse_postgres_url(url: str, source: str) -> PostgresCredentials:
    # Hand-written: dlt's ConnectionStringCredentials leaves a percent-encoded database name
    # encoded and takes ports past 65535; libpq decodes the one and refuses the other.
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ConfigError(f"{source} is not a postgresql:// URL with a host")
    try:
        port = parts.port
    except ValueError:  # urlsplit's answer to a port that is not a number
        raise ConfigError(f"{source}: the port is not a number from 1 to 65535") from None
    return _credentials(
        host=parts.hostname,
        port=port or LIBPQ_PORT,
        user=unquote(parts.username or getpass.getuser()),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/") or parts.username or "postgres"),
        source=source,
        sslmode=_sslmode((parse_qs(parts.query).get("sslmode") or [None])[0]),
    )
