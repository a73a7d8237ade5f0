"""What a run re-reads from the API, and why: the plan, decided here from Neon's signals and the
last run's state. Only whether that state can serve at all is found where it is read: previous.py
says when it cannot (no state yet, confirmations missing, a load that did not complete), and
estate.py, which asks for it and fetches what the plan says, makes a state it cannot read back a
full run too.

The first run reads everything. After it, each run reads the *signals*, at a cost that grows with
projects, not branches:

- the projects listing (400 per page): `updated_at`, `compute_last_active_at`, the usage counters;
- each project's operations, newest first, back to the last one seen (`settings.OPERATION_EFFECTS`
  says what each action can change);
- a branch's `updated_at`, whenever its project's branch listing is re-read.

and re-reads only what they point at:

| a project is read ...         | when                                                          |
|-------------------------------|---------------------------------------------------------------|
| in full (listings, and every  | it is new; it is due on the rolling schedule; its operations  |
| branch's databases and roles) | could not be read back to the last one seen; what the         |
|                               | warehouse holds for it does not match the last confirmation;  |
|                               | the whole run is a full one                                   |
| its listings (branches and    | its listing signals moved, or an operation since the last     |
| computes)                     | reading can change them; then a branch's databases and roles  |
|                               | are re-read when the branch is new, its `updated_at` moved, or |
|                               | an operation since their last reading names it                |
| not at all                    | otherwise: its rows are carried from the warehouse            |

The **rolling refresh** catches what Neon does not signal: every project is read in full again
`full_refresh_days` after its last full reading. A run reads the projects falling due before the
midpoint to the next run (runs are assumed to keep the spacing of the last two), so each is read by
the run nearest its due time: with regular runs, no row is ever older than the period. After a run
that reads everything, the next due dates are spread evenly over the period by a hash of the
project id, so no later run is a spike.

A whole run is a full one on the first run, when the last confirmations are missing or come from a
load that did not complete, when any other part of the last run's state cannot be read back, when
the key, the base URL or the organizations changed since the last run's record (`run_record`,
`full_run_reason`), when the last run is older than Neon keeps operations, and when asked
(`full_refresh`).

The previous state is read from the warehouse the run loads into (the `confirmations` table, the
current rows, the access listings that are carried, and dlt's source state), once, so a run that is
not published leaves it as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import listings, settings
from .previous import FIRST_RUN, Confirmation, Previous, compact, utc
from .reading import iso, parse_ts

FULL, LISTINGS, CARRY = "full", "listings", "carry"  # a project's plan; a whole run's: FULL or INCREMENTAL
INCREMENTAL = "incremental"
FIRST_SPREAD_OFFSET = timedelta(hours=12)

# Reasons, as the summary and the `confirmations.reason` column show them.
FORCED = "full refresh asked for"
NEW_PROJECT = "new project"
NEW_BRANCH = "new branch"
ROLLING = "rolling refresh"
MISMATCH = "warehouse does not match the last confirmation"
OPERATIONS_GAP = "operations could not be read back to the last one seen"
LISTING_MOVED = "project listing moved"
BRANCH_UPDATED = "branch updated_at moved"


def operation_reason(action: str) -> str:
    return f"operation {action}"


# --------------------------------------------------------------------------------- a whole full run


def run_record(*, now: datetime, origin: str, key_fingerprint: str, org_ids: Iterable[str]) -> dict:
    """What a run keeps in dlt's source state for the next one to compare with."""
    return {
        "last_run_at": iso(now),
        "origin": origin,
        "key_fingerprint": key_fingerprint,
        "org_ids": sorted(org_ids),
    }


def full_run_reason(last: Mapping[str, Any], this: Mapping[str, Any]) -> str | None:
    """Why this run must be a full one although the last run left a state, or None: `last` and
    `this` are the two runs' `run_record`s."""
    if not last.get("last_run_at"):
        return "no record of the last run"
    if last.get("origin") != this["origin"]:
        return "the API base URL changed"
    if last.get("key_fingerprint") != this["key_fingerprint"]:
        return "the API key changed"
    new_orgs = set(this["org_ids"]) - set(last.get("org_ids") or [])
    if new_orgs:
        return f"new organization {', '.join(sorted(new_orgs))}"
    age = parse_ts(this["last_run_at"]) - parse_ts(last["last_run_at"])
    if age > timedelta(days=settings.OPERATIONS_RETENTION_DAYS):
        return f"the last run is {age.days} days old, older than Neon keeps operations"
    return None


# ------------------------------------------------------------------------------------------ the plan


def project_signature(project: Mapping[str, Any]) -> str:
    """The listing fields that move when something happens in the project."""
    return compact(
        {
            name: project.get(name)
            for name in (*settings.PROJECT_SIGNAL_FIELDS, *settings.PROJECT_SIGNAL_COUNTERS)
        }
    )


def listing_moved(before: str | None, project: Mapping[str, Any]) -> bool:
    if before is None:
        return True
    old = json.loads(before)
    if any(old.get(name) != project.get(name) for name in settings.PROJECT_SIGNAL_FIELDS):
        return True
    # counters only grow within a billing period; a drop is the new period's reset
    return any((project.get(name) or 0) > (old.get(name) or 0) for name in settings.PROJECT_SIGNAL_COUNTERS)


def phase(object_id: str) -> float:
    """A stable number in (0, 1] for spreading refresh due dates."""
    digest = hashlib.sha256(object_id.encode()).digest()
    return (int.from_bytes(digest[:4], "big") + 1) / 2**32


@dataclass
class ProjectPlan:
    project_id: str
    mode: str  # FULL, LISTINGS or CARRY
    reason: str
    # for LISTINGS: branches whose databases and roles operations name, with the reason; None in
    # the map means every branch of the project
    contents: dict[str | None, str] = field(default_factory=dict)


@dataclass
class Plan:
    """The run's decisions and their reasons, for the summary, the `--plan` flag and the tests."""

    mode: str  # FULL or INCREMENTAL
    reason: str
    full_refresh_days: int
    projects: dict[str, ProjectPlan] = field(default_factory=dict)
    branches_read: Counter = field(default_factory=Counter)  # reason -> branches whose contents were read
    branches_total: int = 0

    def project_reasons(self) -> Counter:
        return Counter(p.reason for p in self.projects.values() if p.mode != CARRY)

    @property
    def projects_read(self) -> int:
        return sum(1 for p in self.projects.values() if p.mode != CARRY)

    def describe(self) -> list[str]:
        """Lines for the run summary."""
        if self.mode == FULL:
            return [f"full run ({self.reason}): every project, branch, database and role read"]
        total = len(self.projects)
        reasons = self.project_reasons()
        rolling = reasons.get(ROLLING, 0)
        lines = [
            f"incremental run: re-read {self.projects_read:,} of {total:,} projects and the databases "
            f"and roles of {sum(self.branches_read.values()):,} of {self.branches_total:,} branches; "
            f"{rolling:,} projects re-confirmed on the rolling schedule ({self.full_refresh_days} days)"
        ]
        for reason, n in reasons.most_common():
            lines.append(f"  projects, {reason}: {n:,}")
        for reason, n in self.branches_read.most_common():
            lines.append(f"  branches, {reason}: {n:,}")
        return lines


class Planner:
    """Decides, project by project and branch by branch, what this run reads."""

    def __init__(
        self,
        previous: Previous | None,
        *,
        now: datetime,
        full_refresh_days: int,
        full_reason: str | None,
        last_run_at: datetime | None,
    ):
        if full_refresh_days < 1:
            raise ValueError("full_refresh_days must be 1 or more")
        self.previous = previous
        self.now = now
        self.period = timedelta(days=full_refresh_days)
        full = full_reason is not None or previous is None
        self.plan = Plan(
            mode=FULL if full else INCREMENTAL,
            reason=full_reason or FIRST_RUN,
            full_refresh_days=full_refresh_days,
        )
        # read now what falls due before the midpoint to the next run, expected as far off as the
        # last one: each project is read by the run nearest its due time
        interval = min(now - last_run_at, self.period) if last_run_at else timedelta(0)
        self.horizon = now + max(interval, timedelta(0)) / 2
        self.skew = timedelta(seconds=settings.CLOCK_SKEW_SECONDS)

    @property
    def full(self) -> bool:
        return self.plan.mode == FULL

    def project(
        self, project: Mapping[str, Any], operations: Iterable[Mapping[str, Any]], operations_complete: bool
    ) -> ProjectPlan:
        """The decision for one project, from its listing item and the operations read this run."""
        pid = project["id"]
        decision = self._project(pid, project, operations, operations_complete)
        self.plan.projects[pid] = decision
        return decision

    def _project(self, pid, project, operations, operations_complete) -> ProjectPlan:
        if self.full:
            return ProjectPlan(pid, FULL, self.plan.reason)
        previous = self.previous
        assert previous is not None
        confirmed = previous.projects.get(pid)
        if confirmed is None:
            return ProjectPlan(pid, FULL, NEW_PROJECT)
        if not previous.matches(pid):
            return ProjectPlan(pid, FULL, MISMATCH)
        if not operations_complete:
            return ProjectPlan(pid, FULL, OPERATIONS_GAP)
        # never later than a period after the oldest confirmation, whatever period an earlier run
        # scheduled it with
        due = min(confirmed.refresh_due_at, previous.oldest(pid) + self.period)
        if due <= self.horizon:
            return ProjectPlan(pid, FULL, ROLLING)
        decision = ProjectPlan(pid, CARRY, "")
        for op in operations:
            effect = settings.OPERATION_EFFECTS.get(op.get("action", ""), settings.CONTENTS)
            if effect == settings.NOTHING:
                continue
            changed_at = utc(op.get("updated_at") or op["created_at"])
            reason = operation_reason(op.get("action", "unknown"))
            if effect == settings.CONTENTS:
                since = (previous.branch(pid, op.get("branch_id")) or confirmed).confirmed_at
                if changed_at >= since - self.skew:
                    decision.contents.setdefault(op.get("branch_id"), reason)
            if decision.mode == CARRY and changed_at >= confirmed.confirmed_at - self.skew:
                decision.mode, decision.reason = LISTINGS, reason
        if decision.mode == CARRY and decision.contents:  # news of contents is news of the listings
            decision.mode, decision.reason = LISTINGS, next(iter(decision.contents.values()))
        if decision.mode == CARRY and listing_moved(confirmed.signature, project):
            decision.mode, decision.reason = LISTINGS, LISTING_MOVED
        return decision

    def branch_contents(self, decision: ProjectPlan, branch: Mapping[str, Any]) -> str | None:
        """Why this branch's databases and roles are read this run, or None to carry them. Asked
        only for branches of projects whose listings were read."""
        if decision.mode == FULL:
            return decision.reason
        assert self.previous is not None
        bid = branch["id"]
        confirmed = self.previous.branch(decision.project_id, bid)
        if confirmed is None:
            return NEW_BRANCH
        if bid in decision.contents:
            return decision.contents[bid]
        if None in decision.contents:  # an operation that names no branch
            return decision.contents[None]
        if confirmed.signature != branch.get("updated_at"):
            return BRANCH_UPDATED
        return None

    def count_branch(self, reason: str | None) -> None:
        self.plan.branches_total += 1
        if reason is not None:
            self.plan.branches_read[reason] += 1

    # -------------------------------------------------------------------------------- confirmations

    def project_confirmation(self, decision: ProjectPlan, project: Mapping[str, Any]) -> Confirmation:
        """The project's confirmation after this run."""
        pid = decision.project_id
        previous = self.previous.projects.get(pid) if self.previous else None
        if decision.mode == CARRY:
            assert previous is not None
            return previous
        if self.full:  # everything read at once: spread the next refreshes evenly over the period,
            # half a day on, so that with daily runs (the usual schedule) every run gets a day's share
            due = self.now + FIRST_SPREAD_OFFSET + self.period * phase(pid)
        elif decision.mode == FULL:
            due = self.now + self.period
        else:  # listings only: the databases and roles of some branches are as old as before
            assert previous is not None
            due = previous.refresh_due_at
        return Confirmation("project", pid, pid, self.now, decision.reason, project_signature(project), due)

    def branch_confirmation(
        self, project: Confirmation, branch_id: str, updated_at: str | None, reason: str | None
    ) -> Confirmation:
        """The confirmation of a branch's databases and roles after this run (read or carried)."""
        if reason is None:
            assert self.previous is not None
            before = self.previous.branch(project.project_id, branch_id)
            assert before is not None
            return Confirmation(
                "branch",
                branch_id,
                project.project_id,
                before.confirmed_at,
                before.reason,
                before.signature,
                project.refresh_due_at,
            )
        return Confirmation(
            "branch", branch_id, project.project_id, self.now, reason, updated_at, project.refresh_due_at
        )


# ------------------------------------------------------------------ who can reach the estate (access.py)
#
# A project's shares (`project_permissions`) and VPC restrictions (`project_vpc_endpoints`) cost a
# request per project, like its listings, and Neon signals no change to them: the spec's
# OperationAction has no action for project access, and nothing documents that granting or
# revoking a share moves the project's `updated_at`. So they are read when the project is read in
# full (a new project, the rolling refresh, a full run, a repair) and carried from the warehouse
# otherwise, with the time they were last read: a share is at most `full_refresh_days` old (plus
# the gap between runs). Besides that, a project's access listings are read when the warehouse
# holds no reading of them yet, when the email setting changed (carried rows would mix plain and
# hashed addresses), and, for VPC restrictions, when its organization's VPC endpoints changed.

NOT_READ_BEFORE = "not read before"
EMAIL_SETTING_CHANGED = "email setting changed"
ORG_VPC_CHANGED = "organization's VPC endpoints changed"


def access_reason(
    decision: ProjectPlan,
    previous: Previous | None,
    listing: str,
    *,
    email_setting_changed: bool = False,
    org_vpc_changed: bool = False,
) -> str | None:
    """Why this run reads one of a project's access listings, or None to carry it."""
    if decision.mode == FULL:
        return decision.reason
    if previous is None or (listing, decision.project_id) not in previous.access_coverage:
        return NOT_READ_BEFORE
    if listing in listings.EMAIL_COLUMNS and email_setting_changed:
        return EMAIL_SETTING_CHANGED
    if listing == listings.PROJECT_VPC_ENDPOINTS.table and org_vpc_changed:
        return ORG_VPC_CHANGED
    return None
