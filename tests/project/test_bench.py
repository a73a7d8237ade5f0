"""The benchmarks measure what they say: the memory row's figure is the extract's own peak; row
6b's baseline is the runs the runner makes, and it fails a suite that makes too many."""

from __future__ import annotations

import subprocess
import sys

from suite import REPO

BALLAST_MB = 400
# The child reads its own peak, started from a parent that holds BALLAST_MB or nothing: as
# `make bench` starts the extract for the memory row from a process that ran the other rows.
PARENT = """
import subprocess, sys
ballast = bytearray(int(sys.argv[1]) * 2**20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1  # touched, so resident
child = "from bench.extract_child import peak_rss_mb; print(peak_rss_mb())"
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
"""


def child_peak(parent_mb: int) -> float:
    run = subprocess.run(
        [sys.executable, "-c", PARENT, str(parent_mb)], capture_output=True, text=True, cwd=REPO, check=True
    )
    return float(run.stdout.split()[-1])


def test_the_memory_row_counts_the_extract_alone_not_the_process_that_started_it():
    alone, beside_ballast = child_peak(0), child_peak(BALLAST_MB)
    assert abs(beside_ballast - alone) < BALLAST_MB / 8, (alone, beside_ballast)


def test_the_suite_s_pipeline_runs_are_the_runner_s_not_a_test_s_own_dbt_parse(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.suite_time import is_pipeline_run

    runs = ["dbt build", "dbt docs", "neon-elt elt", "neon-elt extract", "extract in a test process"]
    assert all(is_pipeline_run(kind) for kind in runs)
    assert not any(is_pipeline_run(kind) for kind in ["dbt parse", "neon-elt report", "neon-elt transform"])


def test_the_suite_s_runs_are_counted_for_the_test_that_started_them(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.suite_time import costliest_tests, read_tally, tallied_env

    tally = tmp_path / "tally.jsonl"
    busy = tmp_path / "dbt"  # a process named as dbt is, which spends a little CPU and exits
    busy.write_text("sum(i * i for i in range(300_000))\n")
    started = {
        "area/test_a.py::test_one (call)": ["build", "build"],
        "area/test_b.py::test_two (setup)": ["parse"],
    }
    for test, commands in started.items():
        for command in commands:
            env = {**tallied_env(tally), "PYTEST_CURRENT_TEST": test}
            subprocess.run([sys.executable, str(busy), command], env=env, check=True)

    runs = read_tally(tally)
    assert sorted(run["test"] for run in runs) == ["area/test_a.py::test_one"] * 2 + [
        "area/test_b.py::test_two"
    ]
    # a test's own dbt parse is not a pipeline run
    [(test, seconds)] = costliest_tests(runs)
    assert test == "area/test_a.py::test_one"
    assert seconds == sum(run["cpu"] for run in runs if run["test"] == test) > 0


def test_row_6b_fails_a_suite_whose_scenarios_make_more_dbt_builds_than_its_cap(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from bench.suite_time import DBT_BUILDS_CAP, overhead_row

    def verdict(builds: int) -> str:
        """The row's verdict for a suite of `builds` dbt builds, 1.2x their CPU in all."""
        runs = [{"kind": "dbt build", "cpu": 10.0, "test": "t"}] * builds
        return overhead_row(cpu=10.0 * builds * 1.2, runs=runs, budget=300).verdict

    assert verdict(DBT_BUILDS_CAP) == "met"
    assert verdict(DBT_BUILDS_CAP + 1) == "MISSED"
