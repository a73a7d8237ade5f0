"""What the tally writes (bench/suite_time.py reads it): one JSON line per pipeline run: its
kind, its CPU seconds and the test that made it. Also a pytest plugin (`-p suite_tally`): an
extract a test runs in its own process (`neon_elt.run.extract`, the simulator's serving included)
is tallied as one.

PYTEST_DONT_REWRITE: pytest imports it before it could rewrite its asserts (it has none)."""

from __future__ import annotations

import functools
import json
import os
import resource
import time


def _write(kind: str, cpu: float) -> None:
    # PYTEST_CURRENT_TEST: pytest sets it for the running test, and a child process inherits it
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    line = json.dumps({"kind": kind, "cpu": round(cpu, 3), "test": test}) + "\n"
    with open(os.environ["BENCH_TALLY_FILE"], "a") as out:  # one short append: whole lines
        out.write(line)


def record_process(command: str, args: list[str]) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _write(" ".join([command, *args]), usage.ru_utime + usage.ru_stime)


def pytest_configure(config) -> None:
    if not os.environ.get("BENCH_TALLY_FILE"):
        return
    from neon_elt import run

    extract = run.extract

    @functools.wraps(extract)
    def tallied(*args, **kwargs):
        started = time.process_time()
        try:
            return extract(*args, **kwargs)
        finally:
            _write("extract in a test process", time.process_time() - started)

    run.extract = tallied
