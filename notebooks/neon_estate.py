# The analysts' notebook (dbt exposure `estate_notebook`): the marts, read-only, in marimo.
#
#     make notebook                        # marimo's editor on 127.0.0.1:2719
#     .venv/bin/marimo edit notebooks/neon_estate.py   # the same, from the repository root
#
# It reads the warehouse the runner publishes (NEON_DUCKDB_PATH, else neon_api_pipeline.duckdb) over
# a read-only connection, so scheduled runs and other readers carry on while it is open.

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Neon estate")


@app.cell
def _():
    import json

    import duckdb
    import marimo as mo
    from neon_elt import config, targets
    from neon_elt.views import GIB, VEGA_LITE, consumption_panel

    return GIB, VEGA_LITE, config, consumption_panel, duckdb, json, mo, targets


@app.cell
def _(config, duckdb, mo, targets):
    warehouse = config.warehouse_path()
    mo.stop(not warehouse.exists(), mo.md(targets.no_warehouse(f"`{warehouse}`")))
    # Read-only: a run never waits for this notebook. A run publishes a new file when it ends,
    # which this connection does not see; DuckDB keeps one instance per file in a process, so
    # restart the kernel (or reopen the notebook) to read the latest load.
    con = duckdb.connect(str(warehouse), read_only=True)
    _loads = "select max(inserted_at) from neon_api_data._dlt_loads where status = 0"
    (loaded_at,) = con.sql(_loads).fetchone()
    mo.md(
        f"""
        # The Neon estate

        From `{warehouse}`, loaded {loaded_at:%Y-%m-%d %H:%M} UTC, opened read-only. Every table
        below is a mart of the dbt project (`make docs` describes each column); sizes are GiB
        (2^30 bytes), compute is CU-hours (CU-seconds / 3600).
        """
    )
    return (con,)


@app.cell
def _(GIB, con, mo):
    _headline = con.sql("select * from marts.estate")
    _t = dict(zip(_headline.columns, _headline.fetchone(), strict=True))
    mo.hstack(
        [
            mo.stat(f"{_t['project_count']:,}", label="projects"),
            mo.stat(
                f"{_t['branch_count']:,}", label="branches", caption=f"{_t['stale_branch_count']:,} stale"
            ),
            mo.stat(f"{_t['endpoint_count']:,}", label="computes"),
            mo.stat(f"{_t['logical_size_bytes'] / GIB:,.2f}", label="GiB logical size"),
            mo.stat(f"{_t['cu_hours_last_30_days'] or 0:,.1f}", label="CU-hours, last 30 days"),
        ],
        justify="start",
        gap=2,
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## What runs where

    Regions that hold projects (`marts.regional_footprint`; the mart also lists the regions the
    account could use and does not), biggest first.
    """)
    return


@app.cell
def _(GIB, con, mo):
    regions = con.sql(f"""
        select
            region_id, region_name, cloud_provider, project_count, branch_count, endpoint_count,
            active_endpoint_count, pg_version_mix,
            round(total_logical_size_bytes / {GIB}, 2) as logical_size_gib,
            round(100 * share_of_projects, 1) as projects_pct,
            round(100 * share_of_logical_size, 1) as logical_size_pct
        from marts.regional_footprint
        where project_count > 0
        order by project_count desc, total_logical_size_bytes desc
    """).df()
    mo.ui.table(regions, selection=None, label="Regions in use")
    return


@app.cell
def _(con, mo):
    project_rows = con.sql("""
        select project_id, project_name, region_id
        from marts.projects
        order by logical_size_bytes desc nulls last, project_id
    """).fetchall()
    _options = {f"{name} ({project_id}, {region})": project_id for project_id, name, region in project_rows}
    project = mo.ui.dropdown(_options, value=next(iter(_options), None), label="Branches of the project")
    project
    return (project,)


@app.cell
def _(GIB, con, mo, project):
    mo.stop(project.value is None, mo.md("No projects in the warehouse."))
    branches = con.execute(
        f"""
        select
            repeat('  ', branch_depth) || branch_name as branch,
            is_default, is_protected, endpoint_count, active_endpoint_count, max_autoscaling_cu,
            database_count, role_count,
            round(logical_size_bytes / {GIB}, 3) as logical_size_gib,
            round(compute_time_seconds / 3600, 2) as compute_hours,
            age_days, days_since_activity, is_stale
        from marts.project_branch_inventory
        where project_id = ?
        order by lineage_path
        """,
        [project.value],
    ).df()
    mo.ui.table(branches, selection=None, label="The branch tree (lineage order; children indented)")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## What is stale

    The clean-up list (`marts.stale_branches`): non-default branches none of whose computes was
    active for `stale_after_days` (a dbt var, set in dbt_project.yml), biggest first. A branch with children
    or protection needs those handled before it can go.
    """)
    return


@app.cell
def _(GIB, con, mo):
    stale = con.sql(f"""
        select
            cleanup_rank, project_name, branch_name, region_id, days_since_activity,
            child_branch_count, is_protected, endpoint_count,
            round(logical_size_bytes / {GIB}, 3) as logical_size_gib,
            round(cumulative_logical_size_bytes / {GIB}, 3) as reclaimed_so_far_gib
        from marts.stale_branches
        order by cleanup_rank
    """).df()
    mo.vstack(
        [
            mo.md(
                f"**{len(stale)} stale branches**, "
                f"{stale['logical_size_gib'].sum() if len(stale) else 0:,.2f} GiB logical size."
            ),
            mo.ui.table(stale, selection=None, label="Clean-up list"),
        ]
    )
    return


@app.cell
def _(con, mo):
    (_applied,) = con.sql("select stale_after_days from marts.estate").fetchone()
    idle_days = mo.ui.slider(
        1, 180, value=_applied, step=1, label="Idle for at least (days)", show_value=True
    )
    idle_days
    return (idle_days,)


@app.cell
def _(GIB, con, idle_days, mo):
    idle = con.execute(
        f"""
        select
            count(*) as branches,
            coalesce(sum(logical_size_bytes), 0) / {GIB} as logical_size_gib,
            count(distinct project_id) as projects
        from marts.project_branch_inventory
        where not is_default and days_since_activity >= ?
        """,
        [idle_days.value],
    ).fetchone()
    mo.md(
        f"With a threshold of **{idle_days.value} days**, {idle[0]:,} non-default branches in "
        f"{idle[2]:,} projects would be stale, {idle[1]:,.2f} GiB logical size. Set it for the "
        f"marts with `NEON_STALE_AFTER_DAYS={idle_days.value} make elt` (or the dbt var)."
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## What it costs

    Neon's usage bill per organization and billing period (`marts.org_bills`; by metric,
    `marts.monthly_bill`: usage in the units Neon bills, the plan's allowances taken off, priced at
    the rate card's rates or yours), which projects it came from, month over month (`marts.project_costs`), then each project's and
    branch's last 30 days and the estate's consumption per day (`marts.daily_consumption`).
    Consumption stops at yesterday (UTC): Neon revises today until it ends. docs/costs.md
    says how each figure is computed and how to reconcile it with an invoice.
    """)
    return


@app.cell
def _(con, mo):
    from neon_elt.views import NO_BILL, UNBILLED_ORGS, no_history, showable

    bill = con.sql("""
        select
            org_name, billing_period_start, billing_plan, is_period_complete,
            round(cost_usd, 2) as cost_usd,
            round(projected_cost_usd, 2) as projected_cost_usd,
            unpriced_line_count, reported_until,
            rate_effective_from as rate_card_of
        from marts.org_bills
        order by org_name, billing_period_start desc
    """).df()
    mo.stop(bill.empty, mo.md(NO_BILL))
    # plain text: a name Neon serves is not markdown
    _unbilled = no_history([showable(name) for (name,) in con.sql(UNBILLED_ORGS).fetchall()])
    mo.vstack(
        [mo.ui.table(bill, selection=None, label="The bill per organization and billing period (USD)")]
        + ([mo.plain_text(_unbilled)] if _unbilled else [])
    )
    return


@app.cell
def _(con, mo):
    period_projects = con.sql("""
        select
            org_id, billing_period_start, project_name, region_id, is_period_complete,
            round(cost_usd, 2) as cost_usd,
            round(share_of_org_cost, 3) as share_of_org_cost,
            round(previous_period_cost_usd, 2) as previous_period_cost_usd,
            round(cost_change_usd, 2) as cost_change_usd,
            round(compute_cost_usd, 2) as compute_cost_usd,
            round(storage_cost_usd, 2) as storage_cost_usd,
            round(transfer_cost_usd, 2) as transfer_cost_usd,
            round(extra_branches_cost_usd, 2) as extra_branches_cost_usd,
            is_deleted_project
        from marts.project_costs
        order by billing_period_start desc, cost_usd desc nulls last
    """).df()
    mo.stop(period_projects.empty)
    mo.ui.table(period_projects, selection=None, label="Which project drove the bill, per period (USD)")
    return


@app.cell
def _(GIB, con, mo):
    costs = con.sql(f"""
        select
            project_name, project_id, region_id,
            round(cu_hours_last_30_days, 2) as cu_hours_30_days,
            round(estimated_cost_last_30_days, 2) as estimated_cost_usd_30_days,
            round(compute_time_seconds / 3600, 2) as compute_hours,
            round(logical_size_bytes / {GIB}, 3) as logical_size_gib,
            branch_count, stale_branch_count, endpoint_count
        from marts.projects
        order by cu_hours_30_days desc nulls last, logical_size_bytes desc nulls last
    """).df()
    mo.ui.table(costs, selection=None, label="Projects by compute, last 30 days (cost before allowances)")
    return


@app.cell
def _(con, mo):
    branch_cost = con.sql("""
        select
            project_name, branch_name, created_by, is_stale,
            round(cu_hours_last_30_days, 2) as cu_hours_30_days,
            round(storage_gb_months_last_30_days, 4) as storage_gb_months_30_days,
            round(estimated_cost_last_30_days, 2) as estimated_cost_usd_30_days
        from marts.branch_costs
        where consumption_day_count > 0
        order by estimated_cost_last_30_days desc nulls last, cu_hours_last_30_days desc
        limit 50
    """).df()
    mo.stop(branch_cost.empty, mo.md("No branch consumption history was loaded (plans without it)."))
    mo.ui.table(
        branch_cost,
        selection=None,
        label="Branches by cost, last 30 days (rate card or your prices, before allowances)",
    )
    return


@app.cell
def _(GIB, con, mo):
    growth = con.sql(f"""
        with days as (
            select
                project_id,
                arg_max(project_name, usage_date) as project_name,
                min(usage_date) as first_day,
                max(usage_date) as last_day,
                arg_min(logical_size_bytes, usage_date) as first_bytes,
                arg_max(logical_size_bytes, usage_date) as last_bytes
            from marts.project_daily_usage
            group by project_id  -- names are not unique
            having not bool_or(is_deleted_project)
        )
        select
            project_name, first_day, last_day,
            round(first_bytes / {GIB}, 3) as logical_size_gib_first_day,
            round(last_bytes / {GIB}, 3) as logical_size_gib_last_day,
            round((last_bytes - first_bytes) / {GIB}, 3) as growth_gib
        from days
        order by growth_gib desc nulls last
    """).df()
    mo.ui.table(growth, selection=None, label="Storage growth per project, from the daily counter readings")
    return


@app.cell
def _(con, consumption_panel, mo):
    metric_rows = con.sql(f"""
        select metric_name, any_value(billing_unit) as billing_unit
        from marts.daily_consumption
        group by metric_name
        order by metric_name
    """).fetchall()
    panels = {consumption_panel(name, unit): (name, unit) for name, unit in metric_rows}
    mo.stop(not panels, mo.md("No consumption history was loaded (plans without it)."))
    metric = mo.ui.dropdown(
        options=panels,
        value=next((title for title, (name, _unit) in panels.items() if name == "compute_unit_seconds"), None)
        or next(iter(panels)),
        label="Consumption per day",
    )
    metric
    return (metric,)


@app.cell
def _(VEGA_LITE, con, consumption_panel, json, metric):
    metric_name, billing_unit = metric.value
    title = consumption_panel(metric_name, billing_unit)
    daily = con.execute(
        f"""
        select strftime(consumption_date, '%Y-%m-%d') as day, project_name, sum(quantity) as amount
        from marts.daily_consumption
        where metric_name = ?
        group by all
        order by day, project_name
        """,
        [metric_name],
    ).fetchall()

    class VegaLite:
        """A Vega-Lite chart, which marimo draws itself (no plotting library needed)."""

        def __init__(self, spec: dict):
            self.spec = spec

        def _mime_(self) -> tuple[str, str]:
            return "application/vnd.vegalite.v5+json", json.dumps(self.spec)

    VegaLite(
        {
            "$schema": VEGA_LITE,
            "title": f"{title} per day, by project",
            "width": "container",
            "height": 260,
            "data": {"values": [{"day": d, "project": p, "amount": a} for d, p, a in daily]},
            "mark": {"type": "bar"},
            "encoding": {
                "x": {"field": "day", "type": "temporal", "timeUnit": "utcyearmonthdate", "title": None},
                "y": {"field": "amount", "type": "quantitative", "aggregate": "sum", "title": title},
                "color": {
                    "field": "project",
                    "type": "nominal",
                    "legend": {"orient": "bottom", "columns": 4},
                },
                "tooltip": [
                    {"field": "day", "type": "temporal", "timeUnit": "utcyearmonthdate"},
                    {"field": "project", "type": "nominal"},
                    {"field": "amount", "type": "quantitative", "format": ",.2f", "title": title},
                ],
            },
        }
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## How branches come and go

    Every branch version the runs have seen (`marts.branch_history`): when branches were created,
    changed (which columns) and deleted, newest first. Each run adds to it; the first run records
    every branch as created.
    """)
    return


@app.cell
def _(con, mo):
    events = con.sql("""
        select
            strftime(recorded_at, '%Y-%m-%d') as day,
            count(*) filter (where change_type = 'created') as created,
            count(*) filter (where change_type = 'changed') as changed,
            count(*) filter (where change_type = 'deleted') as deleted
        from marts.branch_history
        group by day
        order by day desc
    """).df()
    latest = con.sql("""
        select recorded_at, change_type, history.branch_name, previous_branch_name, changed_columns,
               projects.project_name
        from marts.branch_history as history
        left join marts.projects as projects on history.project_id = projects.project_id
        order by recorded_at desc, history.branch_id
        limit 50
    """).df()
    mo.vstack(
        [
            mo.ui.table(events, selection=None, label="Branch events per day"),
            mo.ui.table(latest, selection=None, label="The latest 50 events"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## How fresh it is

    A run re-reads what Neon signals as changed and re-confirms the rest on a rolling schedule
    (docs/incremental.md). `confirmed_at` is when the API last returned what a row is built
    from; `refresh_due_at` when the rolling refresh reads it again.
    """)
    return


@app.cell
def _(con, mo):
    freshness = con.sql("""
        select
            max(observed_at) as latest_run,
            min(confirmed_at) as oldest_confirmation,
            min(refresh_due_at) as next_refresh_due,
            -- as the dbt test `not_overdue` counts them: more than refresh_grace_hours past due, now
            count(*) filter (
                where refresh_due_at < (now() at time zone 'UTC') - to_hours(refresh_grace_hours)
            ) as projects_overdue
        from marts.projects
    """).df()
    mo.ui.table(freshness, selection=None, label="Projects: confirmations and the rolling refresh")
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md("""
    ## Your own query

    Any SQL over the marts (or the raw `neon_api_data` tables) on the same read-only connection.
    """)
    return


@app.cell
def _(con, mo):
    _df = mo.sql(
        f"""
        select project_name, branch_name, days_since_activity, logical_size_bytes
        from marts.project_branch_inventory
        order by days_since_activity desc nulls last
        limit 20
        """,
        engine=con,
    )
    return


if __name__ == "__main__":
    app.run()
