"""Where the runner's settings come from: the environment first, then dlt's config and secrets.

| setting            | environment          | dlt config / secrets                         | default            |
|--------------------|----------------------|----------------------------------------------|--------------------|
| API key            | `NEON_API_KEY`       | `[sources.neon_api_source] api_key` (secrets)| none               |
| API base URL       | `NEON_API_BASE_URL`  | `[sources.neon_api_source] base_url`         | Neon's public API  |
| warehouse file     | `NEON_DUCKDB_PATH`   |                                              | `neon_api_pipeline.duckdb` |
| stale threshold    | `NEON_STALE_AFTER_DAYS` | (dbt var `stale_after_days`)              | 14 days            |
| warehouse kind     | `NEON_ELT_TARGET`    |                                              | `duckdb`           |
| PostgreSQL         | `NEON_POSTGRES_URL`, `PG*` | `[destination.postgres] credentials` (secrets) | libpq defaults |
| its password       | in the URL, `PGPASSWORD`, `PGPASSFILE` | in `credentials` | `~/.pgpass` (libpq reads it) |
| tuning             | `SOURCES__NEON_API_SOURCE__<KEY>` | `[sources.neon_api_source] requests_per_minute`, `budget_share`, `concurrency`, `max_attempts`, `full_refresh_days`, … | Neon's limits, 7 days |
| hash emails        | `SOURCES__NEON_API_SOURCE__HASH_EMAILS` | `[sources.neon_api_source] hash_emails` | false |
| their salt         | `SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT` | `[sources.neon_api_source] email_hash_salt` (secrets) | none |
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import dlt
from dlt.destinations.impl.duckdb.configuration import DUCK_DB_NAME_PAT
from neon_api_source import settings as source_settings
from neon_api_source.helpers import RetryPolicy, innermost

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
# The default until then. A warehouse under that name stays in use until it is moved (below).
OLD_DEFAULT_WAREHOUSE = "neon_api.duckdb"
SECRETS_SECTION = "sources.neon_api_source"


class ConfigError(Exception):
    """Bad or missing configuration: printed as one line, exit code 2, nothing touched."""


@dataclass(frozen=True)
class ApiKey:
    value: str
    source: str  # where it came from, for error messages; never the key itself

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return f"ApiKey(source={self.source!r})"


def warehouse_path() -> Path:
    """The DuckDB warehouse file, checked before anything runs."""
    raw = os.environ.get("NEON_DUCKDB_PATH") or default_warehouse()
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise ConfigError(f"NEON_DUCKDB_PATH={raw} is a directory; it must name a DuckDB file")
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
    if Path(OLD_DEFAULT_WAREHOUSE).is_file() and not _holds_a_load(Path(DEFAULT_WAREHOUSE)):
        print(
            f"neon-elt: the warehouse is still {OLD_DEFAULT_WAREHOUSE}, its old name; dlt and its "
            f"dashboard look for {DEFAULT_WAREHOUSE}. To move it: mv {OLD_DEFAULT_WAREHOUSE} "
            f"{DEFAULT_WAREHOUSE} && make transform",
            file=sys.stderr,
        )
        return OLD_DEFAULT_WAREHOUSE
    return DEFAULT_WAREHOUSE


def _holds_a_load(path: Path) -> bool:
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
    """A value from dlt's secrets (`.dlt/secrets.toml` or its env names), with parse errors made
    readable."""
    try:
        return dlt.secrets.get(key)
    except Exception as exc:  # dlt wraps the toml parser's error; the innermost one says where
        exc = innermost(exc)
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot read .dlt/secrets.toml: {cause}") from None


def api_key() -> ApiKey:
    """The API key and a description of where it was found."""
    value = os.environ.get("NEON_API_KEY", "").strip()
    if value:
        return ApiKey(value, "the NEON_API_KEY environment variable")
    value = (_secret(f"{SECRETS_SECTION}.api_key") or "").strip()
    if value:
        if os.environ.get("SOURCES__NEON_API_SOURCE__API_KEY"):
            return ApiKey(value, "the SOURCES__NEON_API_SOURCE__API_KEY environment variable")
        return ApiKey(value, "[sources.neon_api_source] api_key in .dlt/secrets.toml")
    raise ConfigError(
        "no Neon API key: set NEON_API_KEY or put api_key under [sources.neon_api_source] in "
        ".dlt/secrets.toml (see README). `make demo` runs the whole pipeline without a key."
    )


def _config(key: str, kind: type, default):
    """A tuning value from dlt's config: `[sources.neon_api_source] <key>` in .dlt/config.toml, or
    the environment variable `SOURCES__NEON_API_SOURCE__<KEY>`."""
    try:
        value = dlt.config.get(f"{SECRETS_SECTION}.{key}")
    except Exception as exc:
        raise ConfigError(f"cannot read .dlt/config.toml: {exc}") from None
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"[sources.neon_api_source] {key} = {value!r} is not a {kind.__name__}") from None


def retry_policy() -> RetryPolicy:
    defaults = RetryPolicy()
    return RetryPolicy(
        max_attempts=_config("max_attempts", int, defaults.max_attempts),
        backoff_base=_config("backoff_base_seconds", float, defaults.backoff_base),
        backoff_max=_config("backoff_max_seconds", float, defaults.backoff_max),
        connect_timeout=_config("connect_timeout_seconds", float, defaults.connect_timeout),
        read_timeout=_config("read_timeout_seconds", float, defaults.read_timeout),
        max_throttle_wait=_config("max_throttle_wait_seconds", float, defaults.max_throttle_wait),
    )


def requests_per_minute() -> float:
    return _config("requests_per_minute", float, source_settings.REQUESTS_PER_MINUTE)


def budget_share(option: float | None = None) -> float:
    """The share of the account's rate limit a run takes: the command-line option, else
    `[sources.neon_api_source] budget_share` (or its environment variable), else 1."""
    share = option if option is not None else _config("budget_share", float, source_settings.BUDGET_SHARE)
    if not 0 < share <= 1:
        raise ConfigError(f"budget_share must be more than 0 and at most 1 (got {share:g})")
    return share


def concurrency() -> int:
    return _config("concurrency", int, source_settings.CONCURRENCY)


def full_refresh_days(option: int | None = None) -> int:
    """How often every project is re-read in full: the command-line option, else
    `[sources.neon_api_source] full_refresh_days` (or its environment variable), else 7."""
    days = (
        option if option is not None else _config("full_refresh_days", int, source_settings.FULL_REFRESH_DAYS)
    )
    if days < 1:
        raise ConfigError(f"full_refresh_days must be a whole number of days, 1 or more (got {days})")
    return days


def stale_after_days(option: int | None = None) -> int | None:
    """dbt's `stale_after_days` for this run: the command-line option, else NEON_STALE_AFTER_DAYS,
    else None (the project's default in dbt_project.yml, 14)."""
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


# ------------------------------------------------------------------------ emails (access review)


@dataclass(frozen=True)
class EmailHashing:
    enabled: bool
    salt: str | None  # the HMAC key: a secret, never printed

    def __repr__(self) -> str:
        return f"EmailHashing(enabled={self.enabled})"


def email_hashing() -> EmailHashing:
    """Whether emails land hashed (`hash_emails`, false by default) and the salt that keys the
    hash (`email_hash_salt`, a secret). Hashing without a salt of at least 16 characters is a
    configuration error: an unkeyed hash of an address is undone by hashing guesses."""
    raw = _config("hash_emails", str, "false")
    flag = str(raw).strip().lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"[sources.neon_api_source] hash_emails = {raw!r} is not true or false")
    if flag not in ("true", "1", "yes"):
        return EmailHashing(False, None)
    salt = str(_secret(f"{SECRETS_SECTION}.email_hash_salt") or "")
    if len(salt) < source_settings.EMAIL_HASH_SALT_MIN_LENGTH:
        raise ConfigError(
            "hash_emails is on but email_hash_salt is missing or shorter than "
            f"{source_settings.EMAIL_HASH_SALT_MIN_LENGTH} characters: put a long random secret under "
            "[sources.neon_api_source] in .dlt/secrets.toml (or SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT), "
            "and keep it: another salt gives other hashes"
        )
    return EmailHashing(True, salt)


def base_url() -> str:
    value = os.environ.get("NEON_API_BASE_URL", "").strip()
    if not value:
        try:
            value = dlt.config.get(f"{SECRETS_SECTION}.base_url") or ""
        except Exception as exc:
            raise ConfigError(f"cannot read .dlt/config.toml: {exc}") from None
    value = (value or source_settings.DEFAULT_BASE_URL).rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"NEON_API_BASE_URL={value!r} is not an http(s) URL")
    return value


# --------------------------------------------------------------------------------------- targets


def target_name() -> str:
    """`duckdb` (default) or `postgres`, from NEON_ELT_TARGET (the Makefile's TARGET=)."""
    return (os.environ.get("NEON_ELT_TARGET") or "duckdb").strip().lower()


@dataclass(frozen=True)
class PostgresCredentials:
    host: str
    port: int
    user: str
    password: str  # empty: libpq looks in the password file (PGPASSFILE or ~/.pgpass) when it connects
    database: str
    source: str
    sslmode: str = "prefer"  # libpq's default; a Neon database wants `require` (its URLs say so)
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
            host=str(secret.get("host") or "localhost"),
            port=_port(secret.get("port"), f"port in {source}"),
            user=str(secret.get("username") or secret.get("user") or getpass.getuser()),
            password=str(secret.get("password") or ""),
            database=str(secret.get("database") or secret.get("dbname") or "postgres"),
            source=source,
            sslmode=str(secret.get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"),
        )
    user = os.environ.get("PGUSER") or getpass.getuser()
    return _credentials(
        host=os.environ.get("PGHOST") or "localhost",
        port=_port(os.environ.get("PGPORT"), "PGPORT"),
        user=user,
        password="",
        database=os.environ.get("PGDATABASE") or user,
        source="the PG* environment variables",
        sslmode=os.environ.get("PGSSLMODE") or "prefer",
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
        return 5432
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{source}: {value!r} is not a port number")
    return port


def _parse_postgres_url(url: str, source: str) -> PostgresCredentials:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise ConfigError(f"{source} is not a postgresql:// URL with a host")
    try:
        port = parts.port
    except ValueError:  # urlsplit's answer to a port that is not a number
        raise ConfigError(f"{source}: the port is not a number from 1 to 65535") from None
    return _credentials(
        host=parts.hostname,
        port=port or 5432,
        user=unquote(parts.username or getpass.getuser()),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/") or parts.username or "postgres"),
        source=source,
        sslmode=(parse_qs(parts.query).get("sslmode") or [os.environ.get("PGSSLMODE") or "prefer"])[0],
    )
