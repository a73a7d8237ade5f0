"""Row 6: the test suite as a user runs it (`make test-fast`, `make test`), wall and CPU time
against its budget; and 6b: what `make test` spends beyond the pipeline runs its scenarios make.

6b's baseline is the suite's own pipeline runs, tallied as they happen (bench/tally): every dbt
process, every `neon-elt` run and every extract a test runs in its own process, with their CPU
seconds. They are the work the end-to-end scenarios exist to check; the rest (fixtures,
assertions, servers, browsers, lint) is the suite's overhead."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench.rows import Row, fmt_s

ROOT = Path(__file__).resolve().parents[1]
TALLY = Path(__file__).resolve().parent / "tally"
# What the suite may spend beyond its pipeline runs, as a share of them, and how many dbt builds
# its scenarios may make, so that they cannot multiply unseen (both proposed: see 6b's note).
OVERHEAD_BUDGET = 0.5
DBT_BUILDS_CAP = 40
# The `neon-elt` commands that run the pipeline (their own CPU: the extract, or the plan; dbt,
# their child, is tallied apart).
PIPELINE_COMMANDS = ("elt", "extract", "demo", "plan")
# The dbt commands the runner starts (`dbt parse` is a test's own way to a manifest).
DBT_PIPELINE_COMMANDS = ("build", "docs")


def _timed_make(
    target: str, junit: Path, cache: Path, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """`make <target>` with the suite's own arguments (the Makefile's, one place) plus a JUnit
    report, pytest's cache in `cache` (the bench's, not the user's): (wall seconds, CPU seconds of
    every process it ran, its exit code)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"PYTEST_ARGS=-q -o cache_dir={cache} --junitxml={junit}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def _junit(junit: Path) -> tuple[int, list[str], float, str, dict[str, float]]:
    """(tests run, the failed ones' names, the slowest test's seconds (setup, call and teardown),
    its name, the seconds of each area's tests (tests/<area>/), slowest area first)."""
    import xml.etree.ElementTree as ElementTree

    def name(case) -> str:
        return f"{case.get('classname')}::{case.get('name')}"

    cases = list(ElementTree.parse(junit).getroot().iter("testcase"))
    failed = [
        name(case) for case in cases if case.find("failure") is not None or case.find("error") is not None
    ]
    slowest = max(cases, key=lambda case: float(case.get("time", 0)))
    areas: Counter[str] = Counter()
    for case in cases:  # classname: tests.<area>.<module>
        areas[case.get("classname", "").split(".")[1]] += float(case.get("time", 0))
    return len(cases), failed, float(slowest.get("time", 0)), name(slowest), dict(areas.most_common())


def tallied_env(tally: Path) -> dict[str, str]:
    """The environment of a tallied `make test`: bench/tally on the path of every Python process
    (its sitecustomize tallies dbt and neon-elt) and as a pytest plugin (the tests' own extracts)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TALLY), env.get("PYTHONPATH")]))
    env["PYTEST_ADDOPTS"] = " ".join(filter(None, [env.get("PYTEST_ADDOPTS"), "-p suite_tally"]))
    env["BENCH_TALLY_FILE"] = str(tally)
    return env


def read_tally(tally: Path) -> list[dict]:
    """The tallied runs, one dict each: `kind` (`dbt <command>`, `neon-elt <command>`, `extract in
    a test process`), `cpu` (its CPU seconds) and `test` (the test that made it)."""
    return [json.loads(line) for line in tally.read_text().splitlines()] if tally.exists() else []


def by_kind(runs: list[dict]) -> dict[str, tuple[int, float]]:
    """Kind of run -> (how many, CPU seconds)."""
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for run in runs:
        counts[run["kind"]] += 1
        seconds[run["kind"]] += run["cpu"]
    return {kind: (counts[kind], seconds[kind]) for kind in counts}


def costliest_tests(runs: list[dict], top: int = 5) -> list[tuple[str, float]]:
    """The tests whose pipeline runs took the most CPU (a fixture's runs count for the test
    that set it up), with those seconds, costliest first."""
    seconds: Counter[str] = Counter()
    for run in runs:
        if is_pipeline_run(run["kind"]):
            seconds[run.get("test") or "(no test)"] += run["cpu"]
    return seconds.most_common(top)


def is_pipeline_run(kind: str) -> bool:
    command, _, sub = kind.partition(" ")
    if command == "dbt":
        return sub in DBT_PIPELINE_COMMANDS
    return kind == "extract in a test process" or sub in PIPELINE_COMMANDS


def overhead_row(cpu: float, runs: list[dict], budget: float) -> Row:
    cores = os.cpu_count() or 1
    pipeline = {kind: value for kind, value in by_kind(runs).items() if is_pipeline_run(kind)}
    floor = sum(seconds for _, seconds in pipeline.values())
    dbt = [value for kind, value in pipeline.items() if kind.startswith("dbt ")]
    extracts = [value for kind, value in pipeline.items() if not kind.startswith("dbt ")]
    ratio = cpu / floor if floor else float("inf")
    builds = pipeline.get("dbt build", (0, 0.0))[0]
    kinds = ", ".join(
        f"{kind} {n} ({seconds:.0f} s)"
        for kind, (n, seconds) in sorted(pipeline.items(), key=lambda kv: -kv[1][1])
    )
    return Row(
        "6b. tests: `make test` beyond its pipeline runs",
        f"{fmt_s(cpu)} CPU, the whole suite",
        f"{fmt_s(floor)} CPU in its {sum(n for n, _ in dbt)} dbt and {sum(n for n, _ in extracts)} extract runs",
        f"{ratio:.2f}x its runs",
        f"<= {1 + OVERHEAD_BUDGET:.1f}x its runs, <= {DBT_BUILDS_CAP} dbt builds (proposed)",
        "met" if ratio <= 1 + OVERHEAD_BUDGET and builds <= DBT_BUILDS_CAP else "MISSED",
        f"the runs, tallied as the suite made them (bench/tally): {kinds}. On {cores} cores the runs "
        f"alone take {floor / cores:.0f} s, against row 6's budget of {budget:.0f} s"
        + (
            ": that budget can only be met with fewer end-to-end scenarios, so this row proposes to judge "
            "the suite by what it adds to them"
            if floor / cores >= budget
            else ""
        )
        + "; the tests whose runs cost most: "
        + ", ".join(f"{test} {seconds:.0f} s" for test, seconds in costliest_tests(runs)),
    )


def bench_tests(workdir: Path, target: str, budget: float, tally: bool = False) -> list[Row]:
    """Row 6 for `make <target>`; with `tally`, row 6b from the same run."""
    junit = workdir / f"{target}.xml"
    tally_file = workdir / f"{target}.tally.jsonl"
    cache = workdir / "pytest-cache"
    inner_loop = target == "test-fast"  # timed on its second run: the first parses the dbt project whole
    if inner_loop:
        _timed_make(target, workdir / "warm-up.xml", cache)
    load = os.getloadavg()[0]
    wall, cpu, code = _timed_make(target, junit, cache, tallied_env(tally_file) if tally else None)
    count, failed, slowest, name, areas = _junit(junit)
    met = code == 0 and wall < budget and slowest <= 60
    rows = [
        Row(
            f"6. tests: `make {target}`, {count} tests on {os.cpu_count()} cores",
            f"{fmt_s(wall)} wall, {fmt_s(cpu)} CPU" + (f", {len(failed)} FAILED" if failed or code else ""),
            f"{fmt_s(budget)} budget",
            f"{wall / budget:.2f}x the budget",
            f"< {budget:.0f} s, no test > 60 s",
            "met" if met else "MISSED",
            f"`make {target}` as a user runs it"
            + (
                ", the second time in a row (the inner loop; dbt parses the project whole once)"
                if inner_loop
                else ""
            )
            + f"; the slowest test {slowest:.0f} s ({name}); load average "
            f"{load:.1f} when it started (the wall time grows with it, the CPU time does not); the "
            f"tests' time by folder: {', '.join(f'{area} {seconds:.0f} s' for area, seconds in areas.items())}"
            + (f"; failed: {', '.join(failed)}" if failed else ""),
        )
    ]
    if tally:
        rows.append(overhead_row(cpu, read_tally(tally_file), budget))
    return rows
