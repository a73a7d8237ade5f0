"""What the test folders share by import rather than as fixtures: the repository's root, the
client for a simulator, and a build that one xdist worker makes once per test run for all.

They live here, not in tests/conftest.py: each test folder may have a conftest.py of its own, and
pytest imports every one of them under the one name `conftest`."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from neon_api_source.configuration import NeonApiSourceConfiguration, make_client
from neon_api_source.helpers import NeonClient
from neon_simulator import Simulator

REPO = Path(__file__).resolve().parents[2]


def client_for(simulator: Simulator, api_key: str | None = None, limiter=None, **retry) -> NeonClient:
    """The client for a simulator, built as every client is (configuration.make_client): no rate
    limit unless `limiter` is given, and retries as in production but with short backoff, so that
    fault tests stay quick. `retry` overrides RetryPolicy's fields (`max_attempts`, `read_timeout`)."""
    retry = {"backoff_base": 0.02, "backoff_max": 0.2, "read_timeout": 5.0, **retry}
    settings = NeonApiSourceConfiguration(
        api_key=api_key or simulator.api_key,
        base_url=simulator.base_url,
        requests_per_minute=0,
        **{name if name == "max_attempts" else f"{name}_seconds": value for name, value in retry.items()},
    )
    return make_client(settings, key_source="the test simulator key", limiter=limiter)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # stdlib flock, not the filelock package of xdist's recipe: one lock, on POSIX, as the suite runs
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(shared: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`shared`/`name`, which `build` fills the first time any worker asks; the others wait for it."""
    folder = shared / name
    with _locked(shared / f"{name}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder
