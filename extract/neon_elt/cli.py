"""Command line: `neon-elt elt|extract|transform|demo|docs|report|dashboard|…` (the Makefile's targets).

Every failure ends with one line on stderr that names the cause, and a non-zero exit:
1 for a failed run (API, dbt, or the machine: a full disk, a read-only file system), 2 for
configuration, 3 when another run holds the warehouse, 130 when interrupted (143 for SIGTERM).
The published warehouse is never left half-written.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from neon_api_source import configuration, incremental, settings
from neon_api_source.configuration import NeonApiSourceConfiguration, make_client
from neon_api_source.helpers import SourceConfigError, one_line

from . import config, marimo_apps, memory, targets
from .marts_summary import print_marts_summary
from .run import RunDeadline, StepFailed, dbt, elt
from .warehouse import MachineFault, WarehouseBusy, describe_fault, find_fault


def cmd_run(args: argparse.Namespace) -> None:
    target = targets.from_config(args.target)
    do_extract = args.command in ("elt", "extract")
    do_transform = args.command in ("elt", "transform")
    client = None
    options = {}
    deadline = None
    if do_extract:
        # the options given on the command line first, then dlt's providers (configuration.py)
        settings = configuration.resolve(
            requests_per_minute=args.requests_per_minute,
            budget_share=args.budget_share,
            concurrency=args.concurrency,
            full_refresh_days=args.full_refresh_days,
        )
        client = make_client(settings)  # the source takes its settings from it
        options = {"full_refresh": args.full_refresh}
    else:  # dbt alone: the source's setting bounds it as it bounds a whole run
        targets.existing(target)
        deadline = configuration.resolve().run_deadline_seconds
    if getattr(args, "plan", False):
        result = elt(target, client, plan_only=True, **options)
        assert result is not None and result.stats.plan is not None
        print(plan_report(result.stats.plan))
        print(f"\nNothing was loaded; {target.describe()} is unchanged.")
        return
    elt(
        target,
        client,
        do_extract=do_extract,
        do_transform=do_transform,
        consumption=not args.no_consumption,
        dbt_vars=_dbt_vars(args),
        run_deadline_seconds=deadline,
        **options,
    )
    print(f"\nWarehouse {'published' if target.name == 'duckdb' else 'updated'}: {target.describe()}")


def plan_report(plan) -> str:
    """The plan as `--plan` prints it: the summary, then every project to re-read and why."""
    lines = ["Plan", *[f"  {line}" for line in plan.describe()]]
    chosen = sorted((p.reason, p.project_id) for p in plan.projects.values() if p.mode != incremental.CARRY)
    if chosen and plan.mode != incremental.FULL:
        lines.append("  projects to re-read:")
        lines.extend(f"    {project_id}  {reason}" for reason, project_id in chosen)
    return "\n".join(lines)


def _dbt_vars(args: argparse.Namespace) -> dict | None:
    days = config.stale_after_days(args.stale_after_days)
    return {"stale_after_days": days} if days is not None else None


def cmd_demo(args: argparse.Namespace) -> None:
    from neon_simulator import PRESETS, Account, Simulator

    target = targets.from_config(args.target)
    try:
        account = Account.generate(PRESETS[args.preset])
    except ValueError as exc:  # NEON_SIM_NOW that is not a timestamp
        raise config.ConfigError(str(exc)) from None
    with Simulator(account) as simulator:
        print(f"Neon API simulator on {simulator.base_url} (preset {args.preset})")
        settings = NeonApiSourceConfiguration(
            api_key=simulator.api_key, base_url=simulator.base_url, requests_per_minute=0
        )
        client = make_client(settings, key_source="the demo simulator")
        elt(target, client, dbt_vars=_dbt_vars(args))
    print_marts_summary(target)


def cmd_docs(args: argparse.Namespace) -> None:
    """Generate the docs (for DuckDB from a copy of the warehouse, so that open read-only
    sessions and scheduled runs are not disturbed), then serve them."""
    target = targets.from_config(args.target)
    if not args.no_serve:
        config.check_port_free(args.port, "make docs PORT=9000", what="the docs")
    docs_path = str(config.dbt_target_path() / "docs")
    if isinstance(target, targets.DuckDBTarget):
        with tempfile.TemporaryDirectory(dir=target.path.parent, prefix=".docs-") as folder:
            copy = Path(folder) / target.path.name
            if target.path.exists():
                shutil.copyfile(target.path, copy)
            dbt(["docs", "generate"], targets.DuckDBBuild(copy), target_path=docs_path)
    else:
        target.check()
        dbt(["docs", "generate"], target.direct(), target_path=docs_path)
    print(f"Docs generated from {target.describe()} into {docs_path}")
    if not args.no_serve:  # serving reads the generated files only
        dbt(
            ["docs", "serve", "--port", str(args.port), "--host", "127.0.0.1", "--no-browser"],
            target.direct(),
            target_path=docs_path,
        )


def cmd_summary(args: argparse.Namespace) -> None:
    print_marts_summary(targets.existing(targets.from_config(args.target)))


def cmd_hash_email(args: argparse.Namespace) -> None:
    """The value an address has in a warehouse loaded with `hash_emails`: how an admin who holds
    the salt finds one person's grants without the warehouse holding any address."""
    from neon_api_source.access import hash_email

    settings = configuration.resolve()
    if not settings.hash_emails:
        raise config.ConfigError("hash_emails is off: the warehouse holds addresses as they are")
    for address in args.addresses:
        print(f"{hash_email(address, settings.email_hash_salt)}  {address.strip().lower()}")


def cmd_report(args: argparse.Namespace) -> None:
    from . import report

    output = config.report_path(args.output)
    output = report.write(targets.existing(targets.from_config(args.target)), output)
    print(f"Report written: {output}")


def cmd_dashboard(args: argparse.Namespace) -> None:
    marimo_apps.serve(marimo_apps.dashboard(args.port))


def cmd_notebook(args: argparse.Namespace) -> None:
    marimo_apps.serve(marimo_apps.notebook(args.port))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="neon-elt", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("elt", "extract from the Neon API, then dbt build"),
        ("extract", "extract from the Neon API into neon_api_data"),
        ("transform", "dbt build (models and tests) on the warehouse"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--concurrency", type=int, default=None, help="requests in flight")
        command.add_argument(
            "--requests-per-minute",
            type=float,
            default=None,
            help=f"client-side rate limit (default {settings.REQUESTS_PER_MINUTE}, Neon's; 0 disables)",
        )
        command.add_argument(
            "--budget-share",
            type=float,
            default=None,
            metavar="SHARE",
            help=f"take only this share of the account's rate limit (default {settings.BUDGET_SHARE:g})",
        )
        command.add_argument("--no-consumption", action="store_true", help="skip consumption history")
        if name != "transform":
            command.add_argument(
                "--full-refresh",
                action="store_true",
                help="re-read everything this run, not only what Neon signals as changed",
            )
            command.add_argument(
                "--full-refresh-days",
                type=int,
                default=None,
                metavar="DAYS",
                help="re-read every project in full at least this often "
                f"(default: full_refresh_days in .dlt/config.toml, else {settings.FULL_REFRESH_DAYS})",
            )
            command.add_argument(
                "--plan",
                action="store_true",
                help="read the signals and print what the run would re-read, and why; load nothing",
            )
        command.set_defaults(func=cmd_run)
        target_option(command)
        stale_option(command)
    demo = sub.add_parser("demo", help="the whole pipeline against the bundled simulator")
    demo.add_argument("--preset", default="demo")
    demo.set_defaults(func=cmd_demo)
    target_option(demo)
    stale_option(demo)
    docs = sub.add_parser("docs", help="dbt docs generate, then serve")
    docs.add_argument("--port", type=int, default=8080)
    docs.add_argument("--no-serve", action="store_true")
    docs.set_defaults(func=cmd_docs)
    target_option(docs)
    summary = sub.add_parser("summary", help="print a short summary of the marts")
    summary.set_defaults(func=cmd_summary)
    target_option(summary)
    hashed = sub.add_parser("hash-email", help="print the hash an address has with hash_emails on")
    hashed.add_argument("addresses", nargs="+", metavar="ADDRESS")
    hashed.set_defaults(func=cmd_hash_email)
    report = sub.add_parser("report", help="write a self-contained HTML report of the marts")
    report.add_argument("--output", default="reports/neon_estate_report.html")
    report.set_defaults(func=cmd_report)
    target_option(report)
    dashboard = sub.add_parser(
        "dashboard",
        help="dlt's dashboard (`dlt pipeline neon_api_pipeline show`) on the warehouse, read-only",
    )
    dashboard.add_argument("--port", type=int, default=marimo_apps.DASHBOARD_PORT)
    dashboard.set_defaults(func=cmd_dashboard)
    notebook = sub.add_parser("notebook", help="the analysts' marimo notebook on the warehouse, read-only")
    notebook.add_argument("--port", type=int, default=marimo_apps.NOTEBOOK_PORT)
    notebook.set_defaults(func=cmd_notebook)
    return top


def target_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--target",
        choices=("duckdb", "postgres"),
        default=None,
        help="the warehouse (default: NEON_ELT_TARGET, else duckdb)",
    )


def stale_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--stale-after-days",
        type=int,
        default=None,
        metavar="DAYS",
        help="a non-default branch idle this long is stale "
        "(default: NEON_STALE_AFTER_DAYS, else the dbt var stale_after_days in dbt_project.yml)",
    )


# The last line, however long its cause (a server's text, a path): a scheduler mails it, a log keeps it.
LAST_LINE_CHARS = 600


def fail(message: str) -> None:
    """The one last line of a failure: printable, bounded."""
    print(one_line(f"neon-elt: {message}", LAST_LINE_CHARS), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except (config.ConfigError, SourceConfigError) as exc:  # the runner's settings, the source's
        fail(str(exc))
        return 2
    except WarehouseBusy as exc:
        fail(str(exc))
        return 3
    except StepFailed as exc:
        # the cause first cut to fit, so that the promise at the end is always read
        cause = one_line(str(exc), LAST_LINE_CHARS - 80)
        fail(f"{cause}. The published warehouse is unchanged.")
        return exc.code
    except MachineFault as exc:
        fail(str(exc))
        return 1
    except OSError as exc:  # a disk fault outside a run's working copy (a report, say)
        found = find_fault(exc)
        if found is None:
            raise
        code, path = found
        folder = Path(path).parent if path else Path.cwd()
        fail(describe_fault(code, folder))
        return 1
    except RunDeadline as exc:  # raised as an interrupt is, but a failed run
        fail(f"{exc}. The published warehouse is unchanged.")
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C; dlt turns a SIGTERM during its load into one too
        number = getattr(exc, "signal_code", signal.SIGINT)
        name = "" if number == signal.SIGINT else f" ({signal.Signals(number).name})"
        fail(f"interrupted{name}; the published warehouse is unchanged.")
        return 128 + number
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, systemd and GitHub Actions send), raised as Ctrl-C's interrupt is,
    so that a run ends the same way: the lock released, the working copy removed, exit 143."""

    signal_code = signal.SIGTERM


def _terminate(signum, frame) -> None:
    raise Terminated()


def console(argv: list[str] | None = None) -> int:
    """The `neon-elt` command: a process of its own, whose memory measures (memory.py) reach no
    one else's session."""
    signal.signal(signal.SIGTERM, _terminate)
    memory.keep_pandas_out()
    memory.arrow_uses_the_system_allocator()
    memory.large_blocks_go_back_to_the_os()
    return main(argv)


if __name__ == "__main__":
    sys.exit(console())
