"""`make report`'s "What it costs": each billing period line by line as monthly_bill has it, the
project that drove each bill first, and the allowances and rate card stated."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from expected import query, query_dicts
from neon_elt.report import write
from neon_elt.targets import DuckDBTarget
from neon_elt.views import METRICS
from report_helpers import organization, shows_amount, shows_usd, table

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["demo", "realistic"])
def costed(request, tmp_path_factory) -> tuple[Path, str]:
    """(warehouse, its report's HTML): the demo, whose warehouse holds no complete billing period
    yet, and the `realistic` account's 60 days, which hold one."""
    warehouse = request.getfixturevalue(f"{request.param}_warehouse")
    page = write(DuckDBTarget(warehouse), tmp_path_factory.mktemp(f"costed-{request.param}") / "report.html")
    return warehouse, page.read_text()


def bill_periods(warehouse: Path) -> dict[str, dict]:
    """Per organization: its last complete billing period and its running one (None where it has
    none), as monthly_bill says."""
    rows = query(
        warehouse,
        """select org_id,
                  max(case when is_period_complete then billing_period_start end),
                  max(case when billing_period_end is null then billing_period_start end)
           from marts.monthly_bill group by org_id""",
    )
    assert rows
    return {org_id: {"complete": complete, "running": running} for org_id, complete, running in rows}


def test_each_period_shown_is_monthly_bills_line_by_line(costed):
    """The last complete period and the running one, each metric's quantity, allowance used,
    billable quantity, rate and cost as monthly_bill has them, and the running one's projection."""
    warehouse, page = costed
    for org_id, periods in bill_periods(warehouse).items():
        part = organization(page, org_id)
        for kind, start in periods.items():
            if start is None:
                continue
            lines = query_dicts(
                warehouse,
                f"""select * from marts.monthly_bill where org_id = '{org_id}'
                    and billing_period_start = '{start}'""",
            )
            head, rows, total = table(part, "bill", period=start.isoformat())
            by_metric = {row[0]: row for row in rows}
            assert len(by_metric) == len(rows) == len(lines) > 0
            for line in lines:
                row = dict(zip(head, by_metric[METRICS[line["metric_name"]]], strict=True))
                assert shows_amount(row["quantity"], line["quantity"]), (line, row)
                assert row["unit"] == line["unit"]
                assert shows_amount(row["included (free)"], line["allowance_quantity"]), (line, row)
                assert shows_amount(row["billable"], line["billable_quantity"]), (line, row)
                if line["rate_usd"] is None:
                    assert row["rate"] == "no rate"
                else:
                    rate, unit = row["rate"].split(" / ")
                    assert float(rate.lstrip("$")) == float(line["rate_usd"]) and unit == line["unit"], row
                assert shows_usd(row["cost" if kind == "complete" else "cost so far"], line["cost_usd"]), (
                    line,
                    row,
                )
                if kind == "running":
                    assert shows_usd(row["projected cost"], line["projected_cost_usd"]), (line, row)
            assert shows_usd(total[6], sum(line["cost_usd"] or 0 for line in lines))
        if periods["complete"] is None:
            assert "No billing period is complete in the warehouse yet" in part
        else:
            assert "No billing period is complete" not in part


def test_the_project_that_drove_the_bill_heads_its_list(costed):
    """At a glance and at the top of the projects' table: the project project_costs says cost the
    most in the last complete period (the running one without it), and each project's cost and
    month-over-month change as project_costs has them."""
    warehouse, page = costed
    for org_id, periods in bill_periods(warehouse).items():
        start = periods["complete"] or periods["running"]
        costs = query_dicts(
            warehouse,
            f"""select * from marts.project_costs where org_id = '{org_id}' and billing_period_start = '{start}'
                order by cost_usd desc""",
        )
        top = costs[0]
        assert top["cost_usd"] > costs[1]["cost_usd"]
        part = organization(page, org_id)
        glance = html.unescape(
            re.sub(r"<[^>]+>", "", part.split('<ul class="glance">', 1)[1].split("</ul>", 1)[0])
        )
        assert f"Top project of {start:%B %Y}" in glance and f": {top['project_name']}, $" in glance
        head, rows, _ = table(part, "project-costs", period=start.isoformat())
        assert rows[0][0] == top["project_name"]
        by_name = {row[0]: dict(zip(head, row, strict=False)) for row in rows}
        for project in costs[: len(rows)]:
            row = by_name[project["project_name"]]
            assert shows_usd(row["total"], project["cost_usd"]) and row["region"] == project["region_id"]
            if project["cost_change_usd"] is not None:
                assert row["change"].startswith("+" if project["cost_change_usd"] > 0 else "\u2212")
                assert shows_usd(row["change"].lstrip("+\u2212"), abs(project["cost_change_usd"])), row


def test_the_allowances_used_and_the_rate_cards_date_are_stated(costed):
    warehouse, page = costed
    for org_id, periods in bill_periods(warehouse).items():
        part = organization(page, org_id)
        for start in filter(None, periods.values()):
            listed = re.search(rf'<ul class="note allowances" data-period="{start}">(.*?)</ul>', part, re.S)
            [(used, included, effective_from)] = query(
                warehouse,
                f"""select allowance_quantity, included_quantity, rate_effective_from from marts.monthly_bill
                    where org_id = '{org_id}' and billing_period_start = '{start}'
                    and metric_name = 'public_network_transfer_bytes'""",
            )
            found = re.search(
                rf"Public network transfer: ([\d.,]+) GB used of the {included:g} GB included",
                html.unescape(listed.group(1)),
            )
            assert found and shows_amount(found.group(1), used), start
            assert f"Neon's rate card of {effective_from:%Y-%m-%d}" in html.unescape(part)
