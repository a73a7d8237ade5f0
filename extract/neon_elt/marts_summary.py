"""A short, printed summary of the marts (the end of `make demo`, and `neon-elt summary`)."""

from __future__ import annotations

from typing import Any

from .views import GIB, UNBILLED_ORGS, no_history, showable


def print_marts_summary(target: Any) -> None:
    reader = target.direct()
    totals = reader.rows("select * from marts.estate")[0]
    regions = reader.rows(
        """
        select region_id, project_count, branch_count, endpoint_count, total_logical_size_bytes
        from marts.regional_footprint
        order by project_count desc, region_id
        """
    )
    print(f"\nWarehouse {target.describe()}")
    print(
        f"  {totals['project_count']} projects, {totals['branch_count']} branches "
        f"({totals['stale_branch_count']} stale), {totals['endpoint_count']} computes, "
        f"{totals['database_count']} databases, {float(totals['logical_size_bytes']) / GIB:.2f} GiB logical size"
    )
    print(f"\n  {'region':<22} {'projects':>8} {'branches':>8} {'computes':>8} {'GiB':>8}")
    for r in regions:
        print(
            f"  {r['region_id']:<22} {r['project_count']:>8} {r['branch_count']:>8} {r['endpoint_count']:>8} "
            f"{float(r['total_logical_size_bytes']) / GIB:>8.2f}"
        )
    bill = reader.rows(
        """
        select org_name, billing_period_start, is_period_complete, cost_usd, projected_cost_usd,
            unpriced_line_count
        from marts.org_bills
        where is_last_complete_period or is_last_incomplete_period
        order by org_name, billing_period_start
        """
    )
    if bill:
        print(f"\n  {'what it costs (usage, USD)':<34} {'period':<8} {'cost':>10}   heading for")
        for r in bill:
            cost = "unpriced" if r["cost_usd"] is None else f"{float(r['cost_usd']):,.2f}"
            heading = (
                "(complete)" if r["is_period_complete"] else f"{float(r['projected_cost_usd'] or 0):,.2f}"
            )
            if r["unpriced_line_count"]:
                heading += f", {r['unpriced_line_count']} line(s) unpriced"
            print(
                f"  {showable(r['org_name'], 34):<34} {r['billing_period_start']:%Y-%m} {cost:>10}   {heading}"
            )
        print("  By line and by project: marts.monthly_bill, marts.project_costs (docs/costs.md).")
    if line := no_history([showable(r["org_name"]) for r in reader.rows(UNBILLED_ORGS)]):
        print(("" if bill else "\n") + "  " + line)
    if target.name == "duckdb":
        # The duckdb Python package is installed, the duckdb CLI is not.
        print(
            '\n  Query it: make notebook, or\n  .venv/bin/python -c "import duckdb; '
            f"con = duckdb.connect('{target.path}', read_only=True); "
            "con.sql('select * from marts.project_branch_inventory limit 10').show()\""
        )
