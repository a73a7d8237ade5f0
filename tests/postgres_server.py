"""A throwaway PostgreSQL server for the tests: its own data folder, 127.0.0.1 only, a free port,
trust authentication, stopped at the end. Needs PostgreSQL's server binaries (Debian's
`postgresql` package, which `.ci/run` installs); running as root, the server runs as the
`postgres` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server(user: str = "neon_elt", database: str = "neon_elt") -> Iterator[str]:
    """Yields a libpq URL of a fresh database on a fresh server."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (install Debian's postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="neon-elt-pg-"))
    data, sockets = folder / "data", folder / "run"
    sockets.mkdir()
    as_root = os.geteuid() == 0
    if as_root:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run(prefix + list(args), check=True, capture_output=True, cwd=folder)

    run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", user, "--no-sync")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(folder / "log"), "start")
    try:
        run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database)
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            prefix + [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=folder,
        )
        shutil.rmtree(folder, ignore_errors=True)
