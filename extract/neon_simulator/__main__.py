"""Command line: ``python -m neon_simulator`` (or the ``neon-simulator`` script) serves a synthetic
Neon account in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from .account import Account
from .faults import FAULT_KINDS, Faults, parse_persistent
from .limits import RateLimits
from .reference import PRESETS
from .server import Simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neon-simulator",
        description="Serve a deterministic synthetic Neon account through the Neon API v2 (read-only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8080, help="port; 0 picks a free one (default %(default)s)"
    )
    parser.add_argument(
        "--preset", default="demo", choices=sorted(PRESETS), help="account size (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, help="seed of the account (default: the preset's)")
    parser.add_argument("--projects", type=int, help="number of projects (default: the preset's)")
    parser.add_argument("--orgs", type=int, help="number of organizations; 0 = a personal account")
    parser.add_argument(
        "--now",
        type=_timestamp,
        help="the account clock, RFC 3339 (default: NEON_SIM_NOW, else now truncated to the hour)",
    )
    parser.add_argument("--serve-secrets", action="store_true", help="roles carry passwords")
    parser.add_argument(
        "--org-key", action="store_true", help="accept an API key of the first org instead of a personal one"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every response (default 0)")
    parser.add_argument(
        "--jitter-ms", type=float, default=0.0, help="plus a random 0..this, per request (default 0)"
    )
    parser.add_argument(
        "--rate-limits",
        choices=("neon", "off"),
        default="neon",
        help="enforce Neon's documented limits (default neon)",
    )
    parser.add_argument(
        "--rate-share",
        type=float,
        metavar="SHARE",
        help="grant only this share of the account's budget of Neon's limits, as when other tools "
        "use the rest (default: NEON_SIM_RATE_SHARE, else 1)",
    )
    parser.add_argument(
        "--rate-share-after",
        type=int,
        metavar="N",
        help="grant the full budget for the first N requests, then only --rate-share "
        "(default: NEON_SIM_RATE_SHARE_AFTER, else from the start)",
    )
    faults = parser.add_argument_group(
        "faults (defaults come from NEON_SIM_* variables, see neon_simulator.faults)"
    )
    faults.add_argument(
        "--fault-rate", type=float, help="share of requests that fail, mixed over 5xx/429/drop/truncate"
    )
    faults.add_argument("--fault-seed", type=int, help="seed of the fault draws")
    for kind in FAULT_KINDS:
        faults.add_argument(
            f"--{kind.replace('_', '-')}-rate", type=float, help=f"share of requests with a {kind} fault"
        )
    faults.add_argument("--slow-seconds", type=float, help="delay of a slow fault (default 30)")
    faults.add_argument(
        "--retry-after", type=int, help="Retry-After seconds on burst 429s (default: no header)"
    )
    faults.add_argument(
        "--persistent",
        action="append",
        metavar="ROUTE=STATUS",
        help="always answer STATUS on ROUTE (repeatable)",
    )
    faults.add_argument(
        "--delete-project-after-list", metavar="ID|N", help="project id (or count) deleted once listed"
    )
    parser.add_argument("--url-file", type=Path, help="write the base URL to this file once listening")
    return parser


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {text!r}") from None


def _config_error(message: str) -> int:
    """A setting the simulator cannot use: one line and exit 2, as neon-elt does."""
    print(f"neon-simulator: {message}", file=sys.stderr)
    return 2


def _faults(args: argparse.Namespace) -> Faults:
    """Faults from the environment, overridden by whatever the command line sets."""
    faults = Faults.from_env()
    changes: dict = {}
    if args.fault_rate is not None:
        mixed = Faults.mixed(args.fault_rate)
        changes.update({f"{kind}_rate": getattr(mixed, f"{kind}_rate") for kind in FAULT_KINDS})
    for kind in FAULT_KINDS:
        value = getattr(args, f"{kind}_rate")
        if value is not None:
            changes[f"{kind}_rate"] = value
    for name in ("fault_seed", "slow_seconds", "retry_after"):
        if getattr(args, name) is not None:
            changes["seed" if name == "fault_seed" else name] = getattr(args, name)
    if args.persistent:
        changes["persistent"] = parse_persistent(args.persistent)
    if args.delete_project_after_list is not None:
        target = args.delete_project_after_list
        changes["delete_project_after_list"] = int(target) if target.isdigit() else target
    return dataclasses.replace(faults, **changes)


def _rate_limits(args: argparse.Namespace) -> RateLimits | None:
    """Neon's limits, or the share of the account's budget that --rate-share (NEON_SIM_RATE_SHARE)
    grants, from the start or after --rate-share-after (NEON_SIM_RATE_SHARE_AFTER) requests."""
    if args.rate_limits == "off":
        return None
    share = args.rate_share
    if share is None:
        share = float(os.environ.get("NEON_SIM_RATE_SHARE") or 1)
    after = args.rate_share_after
    if after is None and os.environ.get("NEON_SIM_RATE_SHARE_AFTER"):
        after = int(os.environ["NEON_SIM_RATE_SHARE_AFTER"])
    if not 0 < share <= 1:
        raise ValueError(f"the rate share must be more than 0 and at most 1 (got {share:g})")
    neon = RateLimits.neon()
    if after is not None:
        return neon.dropping(after=after, to=share)
    return neon.scaled(share) if share != 1 else neon


def _describe(limits: RateLimits | None) -> str:
    if limits is None:
        return "off"
    if limits.drop_after is not None:
        return f"neon, {limits.drop_to:.0%} of them after {limits.drop_after} requests"
    share = limits.account_rate / RateLimits.neon().account_rate
    return "neon" if share == 1 else f"{share:.0%} of neon's"


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; returns the process exit code."""
    args = _parser().parse_args(argv)
    spec = PRESETS[args.preset]
    changes = {
        name: getattr(args, name) for name in ("seed", "projects", "orgs") if getattr(args, name) is not None
    }
    if args.orgs is not None:
        changes["consumption_plan_orgs"] = min(spec.consumption_plan_orgs or 1, args.orgs)
    if args.now:
        changes["now"] = args.now
    if args.serve_secrets:
        changes["serve_secrets"] = True
    try:
        limits = _rate_limits(args)
    except ValueError as exc:
        return _config_error(
            f"a rate limit setting (NEON_SIM_RATE_SHARE* or --rate-share*) is not valid: {exc}"
        )
    try:
        account = Account.generate(dataclasses.replace(spec, **changes))
    except ValueError as exc:  # NEON_SIM_NOW that is not a timestamp
        return _config_error(str(exc))
    api_keys = None
    if args.org_key:
        if not account.organizations:
            print("--org-key needs an account with organizations (--orgs > 0)", file=sys.stderr)
            return 2
        org_id = account.organizations[0]["id"]
        api_keys = {account.org_api_key(org_id): {"kind": "org", "org_id": org_id}}
    try:
        faults = _faults(args)
    except ValueError as exc:
        return _config_error(f"a fault setting (NEON_SIM_* or --*-rate) is not valid: {exc}")
    try:
        simulator = Simulator(
            account,
            api_keys=api_keys,
            host=args.host,
            port=args.port,
            latency=args.latency_ms / 1000,
            jitter=args.jitter_ms / 1000,
            rate_limits=limits,
            faults=faults,
        )
        simulator.start()
    except ValueError as exc:  # a host that is not a loopback address
        return _config_error(str(exc))
    except OSError as exc:
        return _config_error(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}): choose another port, "
            "e.g. make simulator PORT=9000"
        )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if args.url_file:
            args.url_file.write_text(simulator.base_url + "\n")
        counts = account.counts()
        print(
            f"Neon API simulator on {simulator.base_url} (preset {args.preset}, {counts['projects']} projects, "
            f"{counts['branches']} branches, {counts['organizations']} orgs, rate limits {_describe(limits)})",
            flush=True,
        )
        print(f"API key: {simulator.api_key}", flush=True)
        print(f"  export NEON_API_BASE_URL={simulator.base_url} NEON_API_KEY={simulator.api_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
    print("Neon API simulator stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
