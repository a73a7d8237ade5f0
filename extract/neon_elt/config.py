"""Where the runner's settings come from: the environment first, then dlt's config and secrets.

| setting            | environment          | dlt config / secrets                         | default            |
|--------------------|----------------------|----------------------------------------------|--------------------|
| API key            | `NEON_API_KEY`       | `[sources.neon_api_source] api_key` (secrets)| none               |
| API base URL       | `NEON_API_BASE_URL`  | `[sources.neon_api_source] base_url`         | Neon's public API  |
| warehouse file     | `NEON_DUCKDB_PATH`   |                                              | `neon_api.duckdb`  |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dlt

from neon_api_source import settings as source_settings

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = ROOT / "dbt_project"
PIPELINE_NAME = "neon_api_pipeline"
DATASET_NAME = "neon_api_data"
DEFAULT_WAREHOUSE = "neon_api.duckdb"
SECRETS_SECTION = "sources.neon_api_source"


class ConfigError(Exception):
    """Bad or missing configuration: printed as one line, exit code 2, nothing touched."""


@dataclass(frozen=True)
class ApiKey:
    value: str
    source: str  # where it came from, for error messages; never the key itself

    def __repr__(self) -> str:  # keep the key out of tracebacks and logs
        return f"ApiKey(source={self.source!r})"


def warehouse_path(default: str = DEFAULT_WAREHOUSE) -> Path:
    """The DuckDB warehouse file, checked before anything runs."""
    raw = os.environ.get("NEON_DUCKDB_PATH") or default
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise ConfigError(f"NEON_DUCKDB_PATH={raw} is a directory; it must name a DuckDB file")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"NEON_DUCKDB_PATH={raw}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"NEON_DUCKDB_PATH={raw}: no permission to write in {parent}")
    if path.exists() and not os.access(path, os.R_OK):
        raise ConfigError(f"NEON_DUCKDB_PATH={raw}: the file is not readable")
    return path


def _secret(key: str):
    """A value from dlt's secrets (`.dlt/secrets.toml` or its env names), with parse errors made
    readable."""
    try:
        return dlt.secrets.get(key)
    except Exception as exc:  # dlt wraps toml errors in several exception types
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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
