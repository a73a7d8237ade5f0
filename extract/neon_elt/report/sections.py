"""What the report's sections hold, as the template lays them out: what it costs (monthly_bill and
org_bills, project_costs, branch_costs), compute hygiene (compute_hygiene), and who can reach the
estate (org_access). Every figure is a mart's; this module picks the rows and words them."""

from __future__ import annotations

from typing import Any, NamedTuple

from neon_api_source.settings import CONSUMPTION_HISTORY_DAYS

from ..views import METRICS, NO_BILL, UNITS, metric_words, no_history
from .charts import branch_cost_chart, project_cost_chart
from .words import (
    COST_KINDS,
    INCLUDED_PER,
    amount,
    days_words,
    findings,
    hours,
    named,
    period_words,
    plan_words,
    priced,
    rate_words,
    share,
    suspend_words,
    until_words,
    usd,
    window_words,
)

COST_ROWS = 25  # branches in the cost table
PROJECT_COST_ROWS = 15  # projects in a period's table (the chart shows as many)
HYGIENE_ROWS = 30  # computes in the hygiene list


class Table(NamedTuple):
    css: str
    head: list[str]
    rows: list[list[Any]]
    foot: list[str] | None = None
    period: str | None = None  # its data-period


def bold(text: str) -> tuple[str, bool]:
    return (text, True)


def plain(text: str) -> tuple[str, bool]:
    return (text, False)


class Period(NamedTuple):
    """One billing period of one organization: its org_bills row and monthly_bill lines."""

    start: Any
    total: dict  # org_bills
    lines: list[dict]  # monthly_bill, one per metric

    @property
    def is_complete(self) -> bool:
        return self.total["is_period_complete"]

    @property
    def is_running(self) -> bool:
        return self.total["is_running"]

    @property
    def cost(self) -> str:
        return priced(
            self.total["priced_cost_usd"], self.total["unpriced_line_count"], self.total["line_count"]
        )

    @property
    def projected_cost(self) -> str:
        t = self.total
        return priced(t["priced_projected_cost_usd"], t["unpriced_projected_line_count"], t["line_count"])

    @property
    def unpriced(self) -> list[str]:
        """The metrics billable in the period without a rate."""
        return [metric_words(line["metric_name"]) for line in self.lines if line["cost_usd"] is None]

    def name(self) -> str:
        return period_words(self.start)

    def heading(self) -> str:
        plan = plan_words(self.total["billing_plan"])
        if self.is_complete:
            return f"{self.name()}, complete ({plan})"
        if self.is_running:
            return f"{self.name()} so far, to {until_words(self.total['reported_until'])} ({plan})"
        return f"{self.name()}, partly loaded ({plan})"


def periods_of(bill: list[dict], org_bills: list[dict]) -> dict[tuple, list[Period]]:
    """Per organization ((org_id, org_name)), its periods, oldest first."""
    order = {name: i for i, name in enumerate(METRICS)}
    lines: dict[tuple, list[dict]] = {}
    for line in bill:
        lines.setdefault((line["org_id"], line["billing_period_start"]), []).append(line)
    orgs: dict[tuple, list[Period]] = {}
    for total in sorted(org_bills, key=lambda t: t["billing_period_start"]):
        org = (total["org_id"], total["org_name"] or total["org_id"])
        start = total["billing_period_start"]
        ordered = sorted(
            lines[(total["org_id"], start)],
            key=lambda line: (order.get(line["metric_name"], len(order)), line["metric_name"]),
        )
        orgs.setdefault(org, []).append(Period(start, total, ordered))
    return orgs


def bill_table(period: Period) -> Table:
    """A period's bill by metric: usage in the unit Neon bills, what the plan included, what is
    billable, the rate and the cost; for the running period, where it is heading."""
    running = not period.is_complete
    head = ["metric", "quantity", "unit", "included (free)", "billable", "rate"]
    head.append("cost so far" if running else "cost")
    if running:
        head += ["projected quantity", "projected cost"]
    rows = []
    for line in period.lines:
        cells = [
            metric_words(line["metric_name"]),
            amount(line["quantity"]),
            line["unit"],
            amount(line["allowance_quantity"]),
            amount(line["billable_quantity"]),
            rate_words(line["rate_usd"], line["unit"]),
            usd(line["cost_usd"]),
        ]
        if running:
            cells += [amount(line["projected_quantity"]), usd(line["projected_cost_usd"])]
        rows.append(cells)
    total = ["Total", "", "", "", "", "", period.cost] + (["", period.projected_cost] if running else [])
    return Table("bill", head, rows, total, period.start.isoformat())


def allowance_words(period: Period) -> list[str]:
    """What the plan included in the period, and how much of it was used."""
    words = []
    for line in period.lines:
        if line["included_quantity"] is None:
            continue
        unit = UNITS.get(line["unit"], line["unit"])
        per = INCLUDED_PER.get(line["included_per"], f"per {line['included_per']}")
        billable = line["billable_quantity"]
        if line["included_per"] == "organization-month":
            words.append(
                f"{metric_words(line['metric_name'])}: {amount(line['allowance_quantity'])} {unit} used of "
                f"the {line['included_quantity']:g} {unit} included {per}"
                + (f"; {amount(billable)} {unit} billable." if billable else ".")
            )
        else:
            words.append(
                f"{metric_words(line['metric_name'])}: {amount(line['quantity'])} {unit} of child branches, "
                f"{amount(line['allowance_quantity'])} of them free ({line['included_quantity']:g} child "
                f"branches included {per})" + (f"; {amount(billable)} billable." if billable else ".")
            )
    return words


def rates_words(periods: list[Period]) -> str:
    """Where the rates of the periods shown come from: the rate card's date, or your prices."""
    sources = []
    for period in periods:
        for line in period.lines:
            if line["rate_source"] == "rate card":
                plan = plan_words(line["billing_plan"])
                found = f"Neon's rate card of {line['rate_effective_from']:%Y-%m-%d} for the {plan}"
            elif line["rate_source"]:
                found = "your prices (the dbt var neon_prices)"
            else:
                continue  # said under "Unpriced"
            if found not in sources:
                sources.append(found)
    return "Rates: " + "; ".join(sources) + "." if sources else ""


def project_total(costs: dict) -> str:
    """A project's cost in a period: project_costs' priced_cost_usd, said to be partial where some
    kind has no rate."""
    unpriced = sum(costs[column] is None for column in COST_KINDS)
    return priced(costs["priced_cost_usd"], unpriced, len(COST_KINDS))


def project_table(
    period: Period, costs: list[dict], previous: Period | None, running: Period | None, running_costs: dict
) -> tuple[Table, int]:
    """The projects of a period, most expensive first: cost by kind, share, month over month (the
    previous period named, and said to be partial when it is), and (beside a complete period) the
    running period so far. With how many more projects the mart holds."""
    before = "previous period" if previous is None else f"{previous.start:%b %Y}"
    if previous is not None and not previous.is_complete:
        before += " (partial)"
    head = ["project", "region", *COST_KINDS.values(), "total", "share", before, "change"]
    if running is not None:
        head.append(f"{running.start:%b %Y} so far")
    rows = []
    for r in costs[:PROJECT_COST_ROWS]:
        cells = [
            r["project_name"] or f"{r['project_id']} (deleted)",
            r["region_id"] or "–",
            *(usd(r[column]) for column in COST_KINDS),
            project_total(r),
            share(r["share_of_org_cost"]),
            "–" if r["previous_period_cost_usd"] is None else usd(r["previous_period_cost_usd"]),
            "–" if r["cost_change_usd"] is None else usd(r["cost_change_usd"], signed=True),
        ]
        if running is not None:
            so_far = running_costs.get(r["project_id"])
            cells.append("–" if so_far is None else project_total(so_far))
        rows.append(cells)
    return Table("project-costs", head, rows, period=period.start.isoformat()), len(costs) - PROJECT_COST_ROWS


def organization_costs(org: tuple, periods: list[Period], project_costs: list[dict]) -> dict:
    """One organization's bill: the last complete period, the running one, and their projects."""
    org_id, org_name = org
    complete = [p for p in periods if p.is_complete]
    last = complete[-1] if complete else None
    running = periods[-1] if not periods[-1].is_complete and periods[-1].is_running else None
    if last is None and running is None:
        running = periods[-1]  # neither complete nor running: the latest, partly loaded
    by_period: dict[Any, list[dict]] = {}
    for r in project_costs:
        if r["org_id"] == org_id:
            by_period.setdefault(r["billing_period_start"], []).append(r)
    headline = last or running
    drivers = by_period.get(headline.start, [])
    glance, notes = [], []
    if last is not None:
        glance.append([bold(last.name()), plain(", complete: "), bold(last.cost)])
    else:
        partial = [p.name() for p in periods if not p.is_complete and not p.is_running]
        glance.append(
            [bold("No billing period is complete in the warehouse yet"), plain(": the running one is shown")]
        )
        notes.append(
            "A period is complete once Neon has closed it and the warehouse holds every day of it. "
            f"Neon's daily history reaches back {CONSUMPTION_HISTORY_DAYS} days, so the period a first run starts in is only "
            "partly loaded"
            + (f" ({', '.join(partial)}: closed by Neon, not held whole)" if partial else "")
            + "; the next period is complete once it ends."
        )
    if running is not None:
        if running.is_running:
            until = until_words(running.total["reported_until"])
            glance.append(
                [bold(running.name()), plain(f" so far, to {until}: "), bold(running.cost)]
                + [plain(", heading for "), bold(running.projected_cost), plain(" by the period's end")]
            )
        else:
            glance.append([bold(running.name()), plain(", partly loaded: "), bold(running.cost)])
    if drivers:
        top = drivers[0]
        glance.append(
            [
                plain(f"Top project of {headline.name()}{'' if last else ' so far'}: "),
                bold(top["project_name"] or top["project_id"]),
                plain(f", {project_total(top)}"),
            ]
            + (
                []
                if top["share_of_org_cost"] is None
                else [plain(f" ({share(top['share_of_org_cost'])} of the bill)")]
            )
        )
    previous = periods[periods.index(headline) - 1] if periods.index(headline) > 0 else None
    shown = [p for p in (last, running) if p is not None]
    chart, table, more = None, None, 0
    if drivers:
        title = f"Which projects drove the bill: {headline.name()}" + ("" if last else " so far")
        chart = project_cost_chart(f"project-costs-{org_id}", title, drivers[:PROJECT_COST_ROWS])
        running_costs = (
            {r["project_id"]: r for r in by_period.get(running.start, [])} if (running and last) else {}
        )
        table, more = project_table(headline, drivers, previous, running if last else None, running_costs)
    unpriced = sorted({metric for period in shown for metric in period.unpriced})
    return {
        "org_id": org_id or "",
        "org_name": named(org_name) if org_id else "Personal account",
        "glance": glance,
        "notes": notes,
        "periods": [
            {
                "heading": p.heading(),
                "bill": bill_table(p),
                "allowances": allowance_words(p),
                "start": p.start,
            }
            for p in shown
        ],
        "unpriced": unpriced,
        "rates": rates_words(shown),
        "chart": chart,
        "projects": table,
        "more_projects": more,
    }


def branch_costs(costs: list[dict]) -> dict | None:
    """The branches that cost the most over the last 30 complete days, with their owner."""
    if not costs:
        return None
    measured = [r for r in costs if r["cu_hours_last_30_days"] is not None]
    window = window_words(costs[0]["window_start_date"], costs[0]["window_end_date"])
    rows = [
        [
            named(r["project_name"]),
            named(r["branch_name"]),
            r["created_by"] or "–",
            r["consumption_day_count"],
            hours(r["cu_hours_last_30_days"]),
            amount(r["storage_gb_months_last_30_days"]),
            usd(r["estimated_cost_last_30_days"]),
        ]
        for r in measured[:COST_ROWS]
    ]
    return {
        "window": window,
        "chart": branch_cost_chart(costs) if measured else None,
        "measured": len(measured),
        "count": len(costs),
        "rows": rows,
        "more": len(measured) - COST_ROWS,
    }


def costs(
    bill: list[dict],
    org_bills: list[dict],
    project_costs: list[dict],
    branches: list[dict],
    unbilled: list[dict],
) -> dict:
    orgs = periods_of(bill, org_bills)
    return {
        "orgs": [organization_costs(org, periods, project_costs) for org, periods in orgs.items()],
        "no_history": no_history([r["org_name"] for r in unbilled]),
        "no_bill": NO_BILL,
        "branches": branch_costs(branches),
    }


def hygiene(computes: list[dict], thresholds: dict) -> dict:
    """The compute hygiene list: computes with findings, and what each finding means."""
    found = findings(thresholds)
    flagged = [r for r in computes if r["flag_count"]]
    rows = [
        [
            f"{named(r['project_name'])} / {named(r['branch_name'])}",
            r["endpoint_id"],
            ", ".join(words for flag, (words, _) in found.items() if r[flag]),
            r["compute_size"],
            suspend_words(r["suspend_timeout_seconds"]),
            r["days_since_active"],
            "shared"
            if r["cu_hours_last_30_days"] is None and r["branch_cu_hours_last_30_days"] is not None
            else hours(r["cu_hours_last_30_days"]),
        ]
        for r in flagged[:HYGIENE_ROWS]
    ]
    return {
        "flagged": len(flagged),
        "count": len(computes),
        "counts": ", ".join(
            f"{sum(1 for r in flagged if r[flag])} {words}" for flag, (words, _) in found.items()
        ),
        "legend": list(found.values()),
        "rows": rows,
        "more": len(flagged) - HYGIENE_ROWS,
    }


ACCESS_COLUMNS = (
    "organization",
    "active members",
    "admins",
    "without MFA",
    "API keys",
    "unused keys",
    "active shares",
    "outside the org",
    "projects",
    "reachable from anywhere",
    "IP allow list",
    "VPC only",
)
# The counts of the table (org_access), and the listings each needs the key to have read (a flag
# that is false makes the count unknown; NULL, for the personal account, has no listing to miss).
ACCESS_COUNTS = (
    ("active_member_count", ("are_members_visible",)),
    ("admin_count", ("are_members_visible",)),
    ("member_without_mfa_count", ("are_members_visible",)),
    ("api_key_count", ("are_api_keys_visible",)),
    ("unused_api_key_count", ("are_api_keys_visible",)),
    ("active_share_count", ("are_shares_visible",)),
    ("outside_share_count", ("are_members_visible", "are_shares_visible")),
)
PROJECT_COUNTS = (
    "project_count",
    "reachable_project_count",
    "ip_allow_list_project_count",
    "vpc_only_project_count",
)


def projects_words(n: int) -> str:
    return f"{n:,} project{'' if n == 1 else 's'}"


def stale_words(thresholds: dict) -> str:
    """What the clean-up list holds, with the threshold the marts applied."""
    days = days_words(thresholds["stale_after_days"])
    return (
        f"Non-default branches none of whose computes was active for {days} or more (the dbt var "
        "stale_after_days), biggest first."
    )


def access(orgs: list[dict], estate: dict) -> dict:
    """The access review in counts: one row per organization, what the key could not see, and
    the totals of the flags (marts.estate's)."""
    rows, notes = [], []
    for org in orgs:
        name = "Personal account" if org["is_personal_account"] else org["org_name"] or org["org_id"]
        rows.append(
            [
                name,
                *(
                    "not visible" if any(org[flag] is False for flag in flags) else f"{org[key]:,}"
                    for key, flags in ACCESS_COUNTS
                ),
                *(f"{org[key]:,}" for key in PROJECT_COUNTS),
            ]
        )
        unseen = [org["not_visible"]] if org["not_visible"] else []
        if org["unknown_shares_project_count"]:
            unseen.append(f"project shares of {projects_words(org['unknown_shares_project_count'])}")
        if org["unknown_vpc_restrictions_project_count"]:
            unseen.append(
                f"VPC restrictions of {projects_words(org['unknown_vpc_restrictions_project_count'])}"
            )
        if unseen:
            notes.append(f"{name}: {', '.join(unseen)}")
    summary = (
        f"{estate['member_without_mfa_count']:,} active members without MFA, "
        f"{estate['unused_api_key_count']:,} API keys never used or long unused, "
        f"{estate['outside_share_count']:,} active shares outside their organization, "
        f"{estate['excess_admin_count']:,} admins of organizations with too many; "
        f"{estate['reachable_project_count']:,} of {estate['project_count']:,} projects reachable from anywhere."
    )
    return {"head": ACCESS_COLUMNS, "rows": rows, "notes": notes, "summary": summary}
