"""Where TARGET=postgres finds its credentials, and that the password never shows in what we print."""

from __future__ import annotations

import os
import socket

import pytest
from neon_elt import config
from runs import free_port, run_cli

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


# ------------------------------------------------------------------- the password, in libpq's order


@pytest.fixture
def no_password(clean_env, tmp_path):
    """No PGPASSWORD, no PGPASSFILE, and a home without .pgpass."""
    for name in ("PGPASSWORD", "PGPASSFILE"):
        clean_env.delenv(name, raising=False)
    clean_env.setenv("HOME", str(tmp_path))
    clean_env.setenv("NEON_POSTGRES_URL", "postgresql://analyst@db.internal/warehouse")
    return clean_env


def test_a_password_in_the_url_wins_over_pgpassword(no_password):
    no_password.setenv("NEON_POSTGRES_URL", "postgresql://analyst:from-url@db.internal/warehouse")
    no_password.setenv("PGPASSWORD", "from-env")
    credentials = config.postgres_credentials()
    assert credentials.password == "from-url" and credentials.password_source == "NEON_POSTGRES_URL"


def test_pgpassword_gives_the_password_a_url_leaves_out(no_password):
    no_password.setenv("PGPASSWORD", "from-env")
    credentials = config.postgres_credentials()
    assert credentials.password == "from-env" and credentials.password_source == "PGPASSWORD"
    assert "from-env" not in repr(credentials) + credentials.describe_sources()


def test_a_password_file_is_left_to_libpq_and_named_never_read(no_password, tmp_path):
    """An empty password in the URL (`user:@`) is complete for dlt, and libpq reads it as none,
    so it looks in the file itself. The file's content never reaches the credentials."""
    passfile = tmp_path / "pw"
    passfile.write_text("*:*:*:*:in-the-file\n")
    no_password.setenv("PGPASSFILE", str(passfile))
    credentials = config.postgres_credentials()
    assert credentials.password == "" and credentials.url.startswith(
        "postgresql://analyst:@db.internal:5432/"
    )
    assert credentials.password_source == f"the password file PGPASSFILE={passfile}"
    no_password.delenv("PGPASSFILE")
    (tmp_path / ".pgpass").write_text("*:*:*:*:in-the-file\n")
    assert config.postgres_credentials().password_source == "the password file ~/.pgpass"
    assert "in-the-file" not in repr(config.postgres_credentials())


def test_no_password_anywhere_says_where_one_can_go(no_password):
    credentials = config.postgres_credentials()
    assert credentials.password == "" and credentials.password_source is None
    assert "no password given" in credentials.describe_sources()
    assert "PGPASSWORD, ~/.pgpass or [destination.postgres]" in credentials.describe_sources()


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("NEON_POSTGRES_URL", "postgresql://analyst@db.internal:54x2/warehouse", "the port is not a number"),
        ("NEON_POSTGRES_URL", "postgresql://analyst@db.internal:99999/warehouse", "the port is not a number"),
        ("PGPORT", "fifty-four", "PGPORT: 'fifty-four' is not a port number"),
    ],
)
def test_a_bad_port_is_a_configuration_error(clean_env, variable, value, message):
    clean_env.setenv(variable, value)
    with pytest.raises(config.ConfigError, match=message):
        config.postgres_credentials()


# ------------------------------------------------- configuration mistakes: one line, never a traceback


MISTAKES = {
    # case: (command, environment, expected in the one line)
    "url port": (
        ["transform"],
        {"NEON_ELT_TARGET": "postgres", "NEON_POSTGRES_URL": "postgresql://a@127.0.0.1:54x2/w"},
        "NEON_POSTGRES_URL: the port is not a number",
    ),
    "PGPORT": (["elt"], {"NEON_ELT_TARGET": "postgres", "PGPORT": "x"}, "PGPORT: 'x' is not a port number"),
    "sslmode": (
        ["report"],
        {"NEON_ELT_TARGET": "postgres", "NEON_POSTGRES_URL": "postgresql://a@127.0.0.1/w?sslmode=sometimes"},
        'invalid sslmode value: "sometimes"',
    ),
    "docs, unreachable": (
        ["docs", "--no-serve"],
        {"NEON_ELT_TARGET": "postgres", "NEON_POSTGRES_URL": "postgresql://a@127.0.0.1:{closed}/w"},
        "cannot connect to PostgreSQL at postgresql://a@127.0.0.1:",
    ),
    "summary, unreachable": (
        ["summary"],
        {"NEON_ELT_TARGET": "postgres", "NEON_POSTGRES_URL": "postgresql://a@127.0.0.1:{closed}/w"},
        "cannot connect to PostgreSQL at postgresql://a@127.0.0.1:",
    ),
    "summary, no warehouse": (["summary"], {}, "no warehouse at "),
    "no API key": (["extract"], {}, "no Neon API key: set NEON_API_KEY"),
    "budget share": (
        ["extract"],
        {"NEON_API_KEY": "napi_any", "SOURCES__NEON_API_SOURCE__BUDGET_SHARE": "5"},
        "budget_share must be more than 0 and at most 1",
    ),
    "report into a folder": (
        ["report", "--output", "{tmp}"],
        {},
        "is a directory; it must name an .html file",
    ),
    "report, unwritable": (["report", "--output", "/proc/neon/report.html"], {}, "cannot create the folder"),
    "docs, port in use": (["docs", "--port", "{busy}"], {}, "cannot serve the docs on 127.0.0.1:"),
    "simulator, port in use": (["neon-simulator", "--port", "{busy}"], {}, "cannot listen on 127.0.0.1:"),
    "simulator, fault rate": (
        ["neon-simulator", "--port", "0"],
        {"NEON_SIM_FAULT_RATE": "lots"},
        "a fault setting (NEON_SIM_* or --*-rate) is not valid",
    ),
    "demo, simulator clock": (
        ["demo"],
        {"NEON_SIM_NOW": "yesterday"},
        "NEON_SIM_NOW: not an RFC 3339 timestamp",
    ),
    "simulator, clock": (
        ["neon-simulator", "--port", "0"],
        {"NEON_SIM_NOW": "yesterday"},
        "NEON_SIM_NOW: not an RFC 3339 timestamp",
    ),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_a_configuration_mistake_is_one_line_and_exit_2_never_a_traceback(case, clean_env, tmp_path, capsys):
    """Run in process: any exception that escaped main() would be the traceback a user sees."""
    from neon_elt import cli
    from neon_simulator.__main__ import main as simulator_main

    command, environment, expected = MISTAKES[case]
    clean_env.setenv("NEON_ELT_TARGET", "duckdb")
    clean_env.setenv("NEON_DUCKDB_PATH", str(tmp_path / "none.duckdb"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fill = {"closed": free_port(), "busy": busy.getsockname()[1], "tmp": tmp_path}
        for name, value in environment.items():
            clean_env.setenv(name, value.format(**fill))
        argv = [part.format(**fill) for part in command]
        code = simulator_main(argv[1:]) if argv[0] == "neon-simulator" else cli.main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "none.duckdb").exists()


@pytest.mark.parametrize("name", ["secrets.toml", "config.toml"])
def test_a_malformed_dlt_file_is_named_in_one_line(name, tmp_path):
    """TARGET=postgres reads [destination.postgres] from dlt's files, in a new process (dlt reads
    them once per process); the line names the file that does not parse."""
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / name).write_text("[destination.postgres\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NEON_", "PG", "SOURCES__", "DESTINATION__"))
    }
    result = run_cli("summary", env={**env, "NEON_ELT_TARGET": "postgres"}, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"neon-elt: cannot read .dlt/{name}: "), lines[0]
