"""`make bench`: the extract and dbt benchmarks, each a ratio against a baseline measured in the
same run. Prints a table and writes BENCHMARKS.md.

1. speed: our extract vs a plain dlt `rest_api` source (sequential, default settings) against the
   simulator with 50 ms latency and a realistic account; target ours >= 5x faster;
2. limits: our extract against the simulator enforcing Neon's rate limits, with jittered latency,
   vs the floor those limits set; target <= 1.2x the floor with zero 429s;
2b. squeeze: the same against an account whose other tools leave it 30% of the budget (210/min,
   burst 12), 30 projects, default settings, vs the floor the granted rate sets, median of three
   turns; target <= 1.3x the floor with at most 5% of requests answered 429 in every turn;
3. memory: peak RSS of an extract of 5,000 projects / 25,000 branches, every organization's
   consumption served (60 days, per project and per branch: the `large-billed` preset); target
   < 400 MB;
4. dbt: `dbt build` on that warehouse vs a trivial dbt project of the same shape (our count of
   models, materializations, schemas and data tests) built in the same run; target <= 2x (an empty
   project shown too);
5. incremental: on a 5,000-project account, after a full run and a day of churn (30% of projects
   active, 5% changed), the rerun's requests vs the full run's; target <= 30% at the default
   `full_refresh_days` (aim 15%), also shown at other settings;
6. tests: `make test-fast` and `make test` as a user runs them (`make test-fast` the second time
   in a row, as the inner loop does), wall and CPU time against their budgets (45 s and 5 minutes
   on 2 cores), and the slowest test against 60 s. On a shared
   machine the wall time grows with the load (shown); the CPU time does not;
6b. the same `make test`'s CPU vs the CPU of the pipeline runs its scenarios make (every dbt and
   `neon-elt` process and every extract a test runs itself, tallied by bench/tally); target (a
   proposal) <= 1.5x, what the suite adds to the runs it checks, and a cap on its dbt builds, so
   that scenarios cannot multiply unseen (bench/suite_time.py).

`python -m bench --quick` runs smaller accounts (a smoke test of the harness, not the report).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.dbt_build import bench_dbt
from bench.rows import Row, fmt_s
from bench.suite_time import bench_tests

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"

# Each row's target, written once: its text in the table and its verdict both read it.
SPEED_TARGET = 5.0  # 1: ours this many times faster than dlt's rest_api, at least
LIMITS_TARGET = 1.2  # 2: at most this many times the floor Neon's limits set, with no 429
SQUEEZE_TARGET, SQUEEZE_429_SHARE = 1.3, 0.05  # 2b: the floor's multiple, and the 429s' share
MEMORY_BUDGET_MB = 400  # 3: the extract's peak RSS, below it
INCREMENTAL_TARGET, INCREMENTAL_AIM = 0.30, 0.15  # 5: a rerun's requests, as a share of a full run's
TESTS_BUDGETS = {"test-fast": 45.0, "test": 300.0}  # 6: seconds of wall clock on 2 cores


def _client(simulator, **settings):
    """The client for a simulator, built as the runner builds it; Neon's limits unless told
    otherwise (`requests_per_minute=0`: none)."""
    from neon_api_source.configuration import NeonApiSourceConfiguration, make_client

    return make_client(
        NeonApiSourceConfiguration(api_key=simulator.api_key, base_url=simulator.base_url, **settings)
    )


def _isolated_dlt(folder: Path) -> None:
    os.environ["DLT_DATA_DIR"] = str(folder / "dlt")


def bench_speed(workdir: Path, preset: str) -> Row:
    from neon_elt.run import elt
    from neon_simulator import PRESETS, Account, Simulator

    from bench.baseline import run_baseline

    account = Account.generate(PRESETS[preset])
    counts = account.counts()
    with Simulator(account, latency=0.05) as simulator:
        started = time.perf_counter()
        run_baseline(simulator.base_url, simulator.api_key, str(workdir / "baseline.duckdb"))
        baseline_seconds = time.perf_counter() - started
        baseline_requests = simulator.stats.total
        simulator.reset_stats()

        client = _client(simulator, requests_per_minute=0)
        started = time.perf_counter()
        elt(workdir / "speed.duckdb", client, do_transform=False, consumption=False, show_progress=False)
        ours_seconds = time.perf_counter() - started
        ours_requests = simulator.stats.total
    ratio = baseline_seconds / ours_seconds
    return Row(
        f"1. extract speed, 50 ms latency, {counts['projects']} projects / {counts['branches']} branches",
        f"{fmt_s(ours_seconds)} ({ours_requests:,} requests)",
        f"{fmt_s(baseline_seconds)} ({baseline_requests:,} requests, dlt rest_api)",
        f"{ratio:.1f}x faster",
        f">= {SPEED_TARGET:g}x faster",
        "met" if ratio >= SPEED_TARGET else "MISSED",
        "both read organizations, regions, projects, branches, computes, databases, roles and "
        "operations; ours also reads the access review's listings (members, API keys, VPC endpoints, "
        f"each project's shares and VPC restrictions): {ours_requests - baseline_requests:,} requests "
        "more in all; consumption left out of both",
    )


def bench_limits(workdir: Path, preset: str) -> Row:
    from neon_elt.run import elt
    from neon_simulator import PRESETS, Account, RateLimits, Simulator

    account = Account.generate(PRESETS[preset])
    limits = RateLimits.neon()
    with Simulator(account, latency=0.05, jitter=0.02, rate_limits=limits) as simulator:
        client = _client(simulator)
        started = time.perf_counter()
        elt(workdir / "limits.duckdb", client, do_transform=False, show_progress=False)
        seconds = time.perf_counter() - started
        served = simulator.stats
    consumption = sum(served.by_route.get(route, 0) for route in limits.consumption_routes)
    floor = limits.floor_seconds(served.total, consumption)
    ratio = seconds / floor if floor else float("inf")
    throttled = served.rate_limited
    return Row(
        f"2. extract under Neon's limits ({limits.account_rate * 60:.0f}/min, burst {limits.account_burst}), "
        f"{served.total:,} requests",
        f"{fmt_s(seconds)}, {throttled} x 429",
        f"{fmt_s(floor)} floor = (requests - burst) / ({limits.account_rate * 60:.0f}/min)",
        f"{ratio:.2f}x the floor",
        f"<= {LIMITS_TARGET:g}x, zero 429s",
        "met" if ratio <= LIMITS_TARGET and throttled == 0 else "MISSED",
        f"simulator enforces the limits (40 per second per route as a sliding window), 50 ms latency "
        f"plus 0-20 ms of jitter; {consumption} consumption requests (own 30/min limit)",
    )


def bench_squeeze(workdir: Path, projects: int, share: float = 0.3, turns: int = 3) -> Row:
    """A run that shares the account: other tools leave it `share` of the account's budget (the
    per-route limits stay Neon's); the extract runs with its default settings and has to find
    that out by itself. Turns vary with the machine's load, so the median time counts."""
    from neon_elt.run import elt
    from neon_simulator import PRESETS, Account, RateLimits, Simulator

    account = Account.generate(dataclasses.replace(PRESETS["realistic"], projects=projects))
    granted = RateLimits.neon().scaled(share)
    runs = []
    for turn in range(turns):
        with Simulator(account, latency=0.02, rate_limits=granted) as simulator:
            client = _client(simulator)
            started = time.perf_counter()
            elt(workdir / f"squeeze-{turn}.duckdb", client, do_transform=False, show_progress=False)
            seconds = time.perf_counter() - started
            served = simulator.stats
        # the floor counts the requests that were answered: a 429 is not work the run had to do
        answered = served.total - served.rate_limited
        consumption = sum(served.by_route.get(r, 0) for r in granted.consumption_routes)  # 429s included
        runs.append((seconds, granted.floor_seconds(answered, consumption), served, client.stats))
    seconds, floor, served, stats = sorted(runs, key=lambda run: run[0] / run[1])[len(runs) // 2]
    ratio = seconds / floor
    shares = [run[2].rate_limited / run[2].total for run in runs]
    return Row(
        f"2b. extract granted {share:.0%} of the account's budget ({granted.account_rate * 60:.0f}/min, "
        f"burst {granted.account_burst}), {projects} projects",
        f"{fmt_s(seconds)}, {served.rate_limited} x 429 in {served.total:,} requests "
        f"({served.rate_limited / served.total:.1%})",
        f"{fmt_s(floor)} floor = (answered requests - burst) / ({granted.account_rate * 60:.0f}/min)",
        f"{ratio:.2f}x the floor",
        f"<= {SQUEEZE_TARGET:g}x, <= {SQUEEZE_429_SHARE:.0%} 429s",
        "met" if ratio <= SQUEEZE_TARGET and max(shares) <= SQUEEZE_429_SHARE else "MISSED",
        f"median of {turns} turns ({', '.join(f'{r[0] / r[1]:.2f}x' for r in runs)}; 429s "
        f"{', '.join(f'{s:.1%}' for s in shares)}); default settings, 20 ms latency; other tools take "
        f"the rest of the account's budget, the per-route limits stay Neon's; in the median turn the "
        f"limiter settled at {stats.rate:.0f}/min of its {stats.rate_ceiling:.0f}/min ceiling and 429s "
        f"paused it {stats.throttle_pause:.1f} s",
    )


def bench_memory(workdir: Path, preset: str) -> tuple[Row, Path]:
    """The extract runs in a child process (its peak RSS alone), the simulator in another."""
    url_file = workdir / "large.url"
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neon_simulator",
            "--port",
            "0",
            "--preset",
            preset,
            "--rate-limits",
            "off",
            "--url-file",
            str(url_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        key = _read_key(simulator)
        warehouse = workdir / "large" / "neon_api.duckdb"
        warehouse.parent.mkdir()
        child = subprocess.run(
            [sys.executable, "-m", "bench.extract_child", url_file.read_text().strip(), str(warehouse)],
            env={**os.environ, "NEON_BENCH_KEY": key},
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if child.returncode != 0:
            raise RuntimeError(f"extract child failed:\n{child.stdout}\n{child.stderr}")
        peak_mb, seconds, requests, branches = child.stdout.strip().splitlines()[-1].split()
    finally:
        simulator.terminate()
        simulator.wait()
    peak = float(peak_mb)
    consumption = ", ".join(f"{table} {rows:,} rows" for table, rows in _consumption_rows(warehouse).items())
    row = Row(
        f"3. extract memory, {preset} account ({int(branches):,} branches)",
        f"{peak:.0f} MB peak RSS",
        f"{MEMORY_BUDGET_MB} MB budget",
        f"{peak / MEMORY_BUDGET_MB:.2f}x the budget",
        f"< {MEMORY_BUDGET_MB} MB",
        "met" if peak < MEMORY_BUDGET_MB else "MISSED",
        f"{int(requests):,} requests in {float(seconds):.0f} s, no latency, no limits; {consumption}",
    )
    return row, warehouse


def _consumption_rows(warehouse: Path) -> dict[str, int]:
    """Rows of each consumption table the memory row's extract loaded: what its peak is made of."""
    import duckdb

    connection = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            table: connection.execute(f"select count(*) from neon_api_data.{table}").fetchone()[0]
            for table in ("consumption", "consumption_hourly", "branch_consumption")
        }
    finally:
        connection.close()


def _read_key(simulator: subprocess.Popen) -> str:
    assert simulator.stdout is not None
    for line in simulator.stdout:
        if line.startswith("API key: "):
            return line.split(": ", 1)[1].strip()
    raise RuntimeError("the simulator did not start")


def _timed_run(simulator, warehouse: Path, run_at, full_refresh_days: int):
    """One extract into `warehouse` at `run_at`, without limits: its result and seconds."""
    from neon_elt.run import elt

    client = _client(simulator, requests_per_minute=0)
    started = time.perf_counter()
    result = elt(
        warehouse,
        client,
        do_transform=False,
        show_progress=False,
        run_at=run_at,
        full_refresh_days=full_refresh_days,
    )
    return result, time.perf_counter() - started


def bench_incremental(workdir: Path, preset: str, other_settings: tuple[int, ...] = (14, 30)) -> Row:
    """Per `full_refresh_days` setting: a full run, a day of churn, then the rerun, on the same
    account each time; the rerun's requests against the full run's, and the minutes each costs
    at Neon's 700 requests per minute."""
    from neon_api_source import settings
    from neon_simulator import PRESETS, Account, Simulator

    default = settings.FULL_REFRESH_DAYS
    measured: dict[int, dict] = {}
    for days in (default, *other_settings):
        account = Account.generate(PRESETS[preset])
        warehouse = workdir / f"incremental-{days}" / "neon_api.duckdb"
        warehouse.parent.mkdir()
        with Simulator(account) as simulator:
            _, full_seconds = _timed_run(simulator, warehouse, account.now, days)
            full_requests = simulator.stats.total
            happened = account.churn_day(active_share=0.3, changed_share=0.05)
            simulator.reset_stats()
            result, seconds = _timed_run(simulator, warehouse, account.now, days)
            plan = result.stats.plan
            measured[days] = {
                "full": full_requests,
                "full_seconds": full_seconds,
                "requests": simulator.stats.total,
                "seconds": seconds,
                "projects": len(account.all_projects()),
                "happened": happened,
                "what": f"{plan.projects_read:,} projects ({plan.project_reasons().get('rolling refresh', 0):,} "
                f"rolling) and {sum(plan.branches_read.values()):,} branches re-read",
            }
        shutil.rmtree(warehouse.parent)
    ours = measured[default]
    share = ours["requests"] / ours["full"]
    rate = settings.REQUESTS_PER_MINUTE
    happened = ours["happened"]
    others = "; ".join(
        f"at {days} days {m['requests']:,} requests, {m['requests'] / m['full']:.0%}, {m['what']}"
        for days, m in measured.items()
        if days != default
    )
    return Row(
        f"5. incremental rerun, {ours['projects']:,} projects, a day after a full run "
        f"(full_refresh_days {default})",
        f"{ours['requests']:,} requests ({ours['requests'] / rate:.0f} min at {rate}/min)",
        f"{ours['full']:,} requests, full run ({ours['full'] / rate:.0f} min at {rate}/min)",
        f"{share:.0%} of the full run",
        f"<= {INCREMENTAL_TARGET:.0%} (aim {INCREMENTAL_AIM:.0%})",
        "met" if share <= INCREMENTAL_TARGET else "MISSED",
        f"the day: {len(happened['active']):,} projects active, {len(happened['changed']):,} changed "
        f"({len(happened['branch_created'])} branches created, {len(happened['branch_deleted'])} deleted, "
        f"{len(happened['database_created'])} databases created, {len(happened['project_renamed'])} projects "
        f"renamed); the rerun: {ours['what']}, {ours['seconds']:.0f} s without limits (the full run "
        f"{ours['full_seconds']:.0f} s). Other settings: {others}",
    )


def render(rows: list[Row], quick: bool) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}" + (" (quick mode: small accounts)" if quick else "") + ".",
        "Every figure is a ratio against a baseline measured in the same run, against the bundled",
        "simulator (`extract/neon_simulator`).",
        "",
        "| benchmark | ours | baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.ours} | {row.baseline} | {row.ratio} | {row.target} | {row.verdict} |"
        )
    lines.append("")
    for row in rows:
        lines.append(f"- {row.benchmark.split(', ')[0].split(' (')[0]}: {row.detail}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small accounts; does not write BENCHMARKS.md")
    parser.add_argument(
        "--only",
        choices=("speed", "limits", "squeeze", "memory", "dbt", "incremental", "tests"),
        action="append",
    )
    args = parser.parse_args(argv)
    wanted = set(args.only or ("speed", "limits", "squeeze", "memory", "dbt", "incremental", "tests"))
    speed_preset, limits_preset, squeeze_projects, large_preset, billed_preset = (
        ("demo", "tiny", 3, "demo", "demo")
        if args.quick
        else ("realistic", "realistic", 30, "large", "large-billed")
    )
    workdir = Path(tempfile.mkdtemp(prefix="neon-bench-"))
    _isolated_dlt(workdir)
    rows: list[Row] = []
    try:
        if "speed" in wanted:
            rows.append(bench_speed(workdir, speed_preset))
            print(rows[-1], flush=True)
        if "limits" in wanted:
            rows.append(bench_limits(workdir, limits_preset))
            print(rows[-1], flush=True)
        if "squeeze" in wanted:
            rows.append(bench_squeeze(workdir, squeeze_projects, turns=1 if args.quick else 3))
            print(rows[-1], flush=True)
        if wanted & {"memory", "dbt"}:
            row, warehouse = bench_memory(workdir, billed_preset)
            if "memory" in wanted:
                rows.append(row)
                print(rows[-1], flush=True)
            if "dbt" in wanted:
                rows.append(bench_dbt(workdir, warehouse))
                print(rows[-1], flush=True)
        if "incremental" in wanted:
            rows.append(bench_incremental(workdir, large_preset))
            print(rows[-1], flush=True)
        if "tests" in wanted:  # quick mode: the inner loop only
            for target, budget in list(TESTS_BUDGETS.items())[: 1 if args.quick else 2]:
                for row in bench_tests(workdir, target, budget, tally=target == "test"):
                    rows.append(row)
                    print(row, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report = render(rows, args.quick)
    print("\n" + report)
    if not args.quick and not args.only:
        REPORT.write_text(report)
        print(f"written to {REPORT.relative_to(ROOT)}")
    return 0 if all(r.verdict == "met" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
