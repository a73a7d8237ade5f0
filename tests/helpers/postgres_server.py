"""A throwaway PostgreSQL server for the tests: its own data folder, 127.0.0.1 only, a free port,
stopped at the end. It asks for a password as a real server does (scram-sha-256, on the socket
too), so the tests go through the same authentication a user's server puts them through. Needs
PostgreSQL's server binaries (Debian's `postgresql` package, which `.ci/run` installs); running
as root, the server runs as the `postgres` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from runs import free_port


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """The URL without the password: a libpq user's first example (the password comes apart)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def url_with_password(self) -> str:
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"

    def pgpass_line(self) -> str:
        """This server's line for a libpq password file (~/.pgpass or PGPASSFILE)."""
        fields = (self.host, str(self.port), self.database, self.user, self.password)
        return ":".join(f.replace("\\", "\\\\").replace(":", "\\:") for f in fields) + "\n"


@contextmanager
def postgres_server(user: str = "neon_elt", database: str = "neon_elt") -> Iterator[PostgresServer]:
    """A fresh database on a fresh server that wants `user`'s password (scram-sha-256)."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (install Debian's postgresql)")
    password = f"pw-{secrets.token_hex(8)}:/@#"  # characters a URL and a .pgpass line must escape
    folder = Path(tempfile.mkdtemp(prefix="neon-elt-pg-"))
    data, sockets, pwfile = folder / "data", folder / "run", folder / "pwfile"
    sockets.mkdir()
    pwfile.write_text(password + "\n")
    as_root = os.geteuid() == 0
    if as_root:
        for path in (folder, sockets, pwfile):
            shutil.chown(path, "postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = free_port()

    def run(*args: str, **env: str) -> None:
        subprocess.run(
            prefix + list(args), check=True, capture_output=True, cwd=folder, env={**os.environ, **env}
        )

    run(
        str(binaries / "initdb"),
        *("-D", str(data), "-U", user, "--no-sync"),
        *("--auth=scram-sha-256", f"--pwfile={pwfile}"),
    )
    pwfile.unlink()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start")
    try:
        run(
            str(binaries / "createdb"),
            *("-h", "127.0.0.1", "-p", str(port), "-U", user, database),
            PGPASSWORD=password,
        )
        yield PostgresServer("127.0.0.1", port, user, password, database)
    finally:
        subprocess.run(
            prefix + [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=folder,
        )
        shutil.rmtree(folder, ignore_errors=True)
