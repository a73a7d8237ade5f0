"""`make report`: what the page says and holds: nothing fetched, the warehouse named, the stale
branches, the costliest branches and their owners, the hygiene findings, who can reach the estate,
and whether its figures are simulated. Expected values come from the warehouse or the account."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from pathlib import Path

import duckdb
import pytest
import vl_convert
from expected import (
    access_counts_per_org,
    account_totals,
    dbt_vars,
    query,
    query_dicts,
    unbilled_org_names,
    visible_to_the_personal_key,
)
from neon_elt.marts_summary import print_marts_summary
from neon_elt.report import write
from neon_elt.report.charts import svg
from neon_elt.run import elt
from neon_elt.targets import DuckDBTarget
from neon_simulator import PRESETS, Account, Simulator
from report_helpers import EXPECTED_CHARTS, shows_amount, shows_usd, table, table_rows
from spec import spec as api_spec
from suite import client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def orgs_without_projects(tmp_path_factory) -> tuple[Account, Path]:
    """Four organizations and one project: three organizations have members and no projects, and
    among them (the personal key is an admin of every other one) at least one whose API keys the
    key may read and one whose it may not."""
    account = Account.generate(dataclasses.replace(PRESETS["tiny"], orgs=4, projects=1))
    path = tmp_path_factory.mktemp("orgs-without-projects") / "neon_api.duckdb"
    with Simulator(account) as simulator:
        elt(path, client_for(simulator), show_progress=False)
    return account, path


@pytest.fixture(scope="module")
def report(demo_warehouse, tmp_path_factory) -> Path:
    return write(DuckDBTarget(demo_warehouse), tmp_path_factory.mktemp("report") / "report.html")


def test_the_report_is_self_contained(report):
    page = report.read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert "<link" not in page


def test_the_report_names_the_warehouse_file_not_the_folder_it_sits_in(report, demo_warehouse):
    """The page is mailed and shared: it names the warehouse, never a local folder (a home)."""
    page = report.read_text()
    assert demo_warehouse.name in page
    assert str(demo_warehouse.parent) not in page


def test_the_report_lists_every_stale_branch(report, demo_warehouse):
    stale = query(demo_warehouse, "select branch_name from marts.stale_branches")
    table = report.read_text().split("<h2>Clean-up list</h2>", 1)[1].split("</section>", 1)[0]
    assert table.count("<tr><td>") == len(stale) > 0
    for (name,) in stale:
        assert f"<td>{name}</td>" in table


def test_the_report_and_the_printed_summary_state_the_same_estate(
    report, demo_account, demo_warehouse, capsys
):
    """The headline figures, as the simulator served them: the report's line under its title and
    the summary `make demo` prints (the notebook's: test_dlthub_habits)."""
    totals = account_totals(demo_account)
    projects, branches = totals["project_count"], totals["branch_count"]
    ((stale, stale_bytes),) = query(
        demo_warehouse, "select count(*), coalesce(sum(logical_size_bytes), 0) from marts.stale_branches"
    )
    assert (
        f"{projects} projects, {branches} branches, {stale} stale ({stale_bytes / 2**30:.2f} GiB "
        f"reclaimable), {totals['regions_in_use_count']} of {totals['region_count']} regions in use"
    ) in report.read_text()
    print_marts_summary(DuckDBTarget(demo_warehouse))
    printed = capsys.readouterr().out
    assert (
        f"{projects} projects, {branches} branches ({stale} stale), {totals['endpoint_count']} computes, "
        f"{totals['database_count']} databases"
    ) in printed


def test_the_report_and_the_summary_name_the_organizations_without_a_bill(
    report, demo_account, demo_warehouse, capsys
):
    """An organization whose plan has no consumption history has no bill: both say so by name,
    where the bills of the others are, rather than leave it out unseen."""
    unbilled = unbilled_org_names(demo_account)
    assert unbilled and demo_account.plan_org_ids()  # the demo has both
    costs = report.read_text().split("<h2>What it costs</h2>", 1)[1].split("</section>", 1)[0]
    assert f"No consumption history for {', '.join(unbilled)}" in html.unescape(costs)
    print_marts_summary(DuckDBTarget(demo_warehouse))
    printed = capsys.readouterr().out.split("what it costs", 1)[1]
    assert f"No consumption history for {', '.join(unbilled)}" in printed
    # the plans it names are those Neon's spec serves project consumption history to
    served_to = " ".join(
        api_spec()["paths"]["/consumption_history/v2/projects"]["get"]["description"].split()
    )
    (plans,) = re.findall(r"Available for accounts on ((?:\w+, )+and \w+) plans", served_to)
    line = next(line for line in printed.splitlines() if "No consumption history for" in line)
    assert re.findall(r"\(([^)]*)\)", line)[-1].split(", ") == plans.replace(", and", ",").split(", ")


def urls(spec: object) -> list[str]:
    """Every URL a Vega-Lite spec would load its data from."""
    if isinstance(spec, dict):
        found = [spec["url"]] if "url" in spec else []
        return found + [u for value in spec.values() for u in urls(value)]
    if isinstance(spec, list):
        return [u for item in spec for u in urls(item)]
    return []


def test_the_report_fetches_nothing(demo_warehouse, tmp_path, monkeypatch):
    """Every chart, the map's land included, carries its data in its spec, and vl-convert is
    allowed no URL at all: a spec that names one is refused."""
    rendered, render = [], vl_convert.vegalite_to_svg

    def recording(spec, **options):
        rendered.append((spec, options))
        return render(spec, **options)

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", recording)
    write(DuckDBTarget(demo_warehouse), tmp_path / "report.html")
    assert len(rendered) >= len(EXPECTED_CHARTS)
    assert any(layer.get("name") == "land" for spec, _ in rendered for layer in spec.get("layer", []))
    for spec, options in rendered:
        assert options == {"allowed_base_urls": []}
        assert urls(spec) == [], spec.get("title")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="not allowed"):
        svg({"data": {"url": "https://example.com/regions.json"}, "mark": "point"})


def test_a_warehouse_loaded_from_the_simulator_says_its_figures_are_simulated(demo_warehouse, tmp_path):
    [(origin,)] = query(demo_warehouse, "select origin from neon_api_data._neon_elt_origin")
    page = write(DuckDBTarget(demo_warehouse), tmp_path / "simulated.html").read_text()
    banner = re.search(r'<p class="simulated" data-banner="simulated">(.*?)</p>', page, re.S)
    assert banner and "Simulated data" in banner.group(1) and html.escape(origin) in banner.group(1)
    # the same warehouse, as if loaded from Neon
    copy = tmp_path / "neon.duckdb"
    shutil.copyfile(demo_warehouse, copy)
    connection = duckdb.connect(str(copy))
    connection.execute(
        "update neon_api_data._neon_elt_origin set origin = 'https://console.neon.tech/api/v2'"
    )
    connection.close()
    page = write(DuckDBTarget(copy), tmp_path / "neon.html").read_text()
    assert 'data-banner="simulated"' not in page and "What it costs" in page


def test_the_branches_that_cost_the_most_are_listed_with_their_owner(report, demo_warehouse):
    """The branches that cost the most over the window, priced by default, in CU-hours and
    GB-months, with who created them."""
    expected = query(
        demo_warehouse,
        """select project_name, branch_name, created_by, consumption_day_count, cu_hours_last_30_days,
                  storage_gb_months_last_30_days, estimated_cost_last_30_days
           from marts.branch_costs where cu_hours_last_30_days is not null
           order by estimated_cost_last_30_days desc nulls last, cu_hours_last_30_days desc, branch_id limit 25""",
    )
    page = report.read_text()
    _, rows, _ = table(page, "costs")
    assert [row[:5] for row in rows] == [
        [project, branch, owner or "–", str(days), f"{hours:,.1f}"]
        for project, branch, owner, days, hours, *_ in expected
    ]
    for row, (*_, gb_months, cost) in zip(rows, expected, strict=True):
        assert shows_amount(row[5], gb_months) and shows_usd(row[6], cost), row
    assert any(owner for _, _, owner, *_ in expected) and all(cost is not None for *_, cost in expected)
    assert "neon_prices (dbt_project.yml)" not in page and "GiB-months" not in page


def test_the_hygiene_list_names_each_flagged_compute_and_its_findings_in_words(report, demo_warehouse):
    flagged = query_dicts(
        demo_warehouse,
        """select * from marts.compute_hygiene where flag_count > 0
           order by flag_count desc, cu_hours_last_30_days desc nulls last, endpoint_id""",
    )
    rows = table_rows(report.read_text(), "Compute hygiene")
    assert [row[1] for row in rows] == [r["endpoint_id"] for r in flagged][:30]
    size = dbt_vars()["min_compute_size_cu"]  # the demo's build keeps the project's threshold
    words = {
        "never_suspends": "never suspends",
        "has_oversized_minimum": f"minimum above {size:g} CU",
        "is_active_on_stale_branch": "runs on a stale branch",
        "is_idle_read_replica": "idle read replica",
    }
    for row, facts in zip(rows, flagged, strict=False):
        assert row[2] == ", ".join(text for flag, text in words.items() if facts[flag])
        assert row[3] == facts["compute_size"]
        assert row[5] == str(facts["days_since_active"])
        hours = facts["cu_hours_last_30_days"]
        if hours is not None:
            assert row[6] == f"{hours:,.1f}"
        if facts["suspend_timeout_seconds"] == -1:
            assert row[4] == "never"
    assert any(r["never_suspends"] for r in flagged) and any(r["is_idle_read_replica"] for r in flagged)


def test_every_organization_has_a_row_in_the_access_section_projects_or_none(orgs_without_projects, tmp_path):
    """Counts where the key could read the listing, "not visible" where it could not: an
    organization's API keys are unknown, not none, whether it has projects or not."""
    account, warehouse = orgs_without_projects
    page = write(DuckDBTarget(warehouse), tmp_path / "report.html").read_text()
    rows = {row[0]: row for row in table_rows(page, "Who can reach the estate")}
    # "Not visible to the API key (…): Org A: what; Org B: what."
    unseen = re.search(r"Not visible to the API key \([^)]*\): (.*?)\.</p>", page).group(1)
    notes = dict(note.split(": ", 1) for note in html.unescape(unseen).split("; "))
    counts = access_counts_per_org(account)
    with_projects = {p["org_id"] for p in account.all_projects() if p.get("org_id")}
    without = len(account.organizations) - len(with_projects)
    assert (
        without > 0 and sum(1 for c in counts.values() if c["projects"] == 0 and c["members"] > 0) == without
    )
    assert set(rows) == {org["name"] for org in account.organizations}
    without_projects_hidden = []
    for org in account.organizations:
        expected = counts[org["id"]]
        row = rows[org["name"]]
        assert [row[1], row[2], row[3], row[6], row[7], row[8]] == [
            f"{expected[key]:,}"
            for key in ("members", "admins", "without_mfa", "shares", "outside_shares", "projects")
        ], org["name"]
        if visible_to_the_personal_key(account, org["id"])["api_keys"]:
            assert row[4] == f"{len(account.org_api_keys(org['id'])):,}", org["name"]
        else:
            without_projects_hidden.append(expected["projects"] == 0)
            assert row[4] == row[5] == "not visible", org["name"]
            assert "organization API keys (403)" in notes[org["name"]], org["name"]
    assert any(without_projects_hidden)  # an organization without projects whose API keys are unknown
