"""Where TARGET=postgres finds its credentials, and that the password never shows in what we print."""

from __future__ import annotations

import pytest
from neon_elt import config

PG_VARS = ("NEON_POSTGRES_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in PG_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .dlt/secrets.toml here
    return monkeypatch


def test_a_neon_connection_url_keeps_its_sslmode_and_hides_its_password(clean_env):
    password = "p@ss/w:rd?#1"
    from urllib.parse import quote

    clean_env.setenv(
        "NEON_POSTGRES_URL",
        f"postgresql://analyst:{quote(password, safe='')}@ep-cool-rain-123.eu-central-1.aws.neon.tech/warehouse"
        "?sslmode=require",
    )
    credentials = config.postgres_credentials()
    assert (credentials.user, credentials.password, credentials.database) == (
        "analyst",
        password,
        "warehouse",
    )
    assert credentials.host == "ep-cool-rain-123.eu-central-1.aws.neon.tech" and credentials.port == 5432
    assert credentials.sslmode == "require"
    assert credentials.source == "NEON_POSTGRES_URL"
    # the URL handed to dlt round-trips to the same credentials
    clean_env.setenv("NEON_POSTGRES_URL", credentials.url)
    assert config.postgres_credentials() == credentials
    for shown in (repr(credentials), credentials.safe_url, str(credentials)):
        assert password not in shown and quote(password, safe="") not in shown


def test_libpq_variables_are_the_fallback(clean_env):
    clean_env.setenv("PGHOST", "db.internal")
    clean_env.setenv("PGPORT", "6543")
    clean_env.setenv("PGUSER", "bi")
    clean_env.setenv("PGPASSWORD", "secret-xyz")
    clean_env.setenv("PGSSLMODE", "verify-full")
    credentials = config.postgres_credentials()
    assert (credentials.host, credentials.port, credentials.user, credentials.database) == (
        "db.internal",
        6543,
        "bi",
        "bi",
    )
    assert credentials.sslmode == "verify-full"
    assert credentials.source == "the PG* environment variables"
    assert "secret-xyz" not in repr(credentials)


def test_a_url_that_is_not_postgres_is_refused_with_its_source(clean_env):
    clean_env.setenv("NEON_POSTGRES_URL", "mysql://root@localhost/db")
    with pytest.raises(config.ConfigError, match="NEON_POSTGRES_URL is not a postgresql:// URL"):
        config.postgres_credentials()
