"""`make report`: a self-contained page whose charts really draw, checked in headless Chromium.

Chromium lays out each report once (for the demo account and for the 120-project `realistic` one,
whose long names and many regions are what break layouts); a probe injected into a copy of the page
measures every drawn text and mark, and the tests below read those measurements."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import duckdb
import pytest
import vl_convert
from expected import access_counts_per_org, query, query_dicts, visible_to_the_personal_key
from neon_elt.report import write
from neon_elt.report.charts import project_chart, svg
from neon_elt.report.geo import ATLAS, LAND, place_labels
from neon_elt.run import elt
from neon_elt.targets import DuckDBTarget
from neon_elt.views import METRICS
from neon_simulator import PRESETS, Account, Simulator
from suite import client_for

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXPECTED_CHARTS = {
    "regions",
    "regions-map",
    "branch-ages",
    "stale-branches",
    "projects",
    "consumption",
    "branch-costs",
}
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)

# Injected into a copy of the report (the report itself has no script): once the page has laid out,
# measures every chart's drawn marks and texts, and writes the result into the DOM for --dump-dom.
PROBE = """
<script>
window.addEventListener("load", () => {
  const box = r => ({left: r.left, top: r.top, right: r.right, bottom: r.bottom});
  const drawn = el => { const b = el.getBBox(); return b.width > 0 || b.height > 0; };
  const result = {};
  for (const figure of document.querySelectorAll("figure.chart")) {
    const svg = figure.querySelector("svg");
    if (!svg) { result[figure.dataset.chart] = {width: 0, height: 0, marks: 0, texts: []}; continue; }
    const texts = [...svg.querySelectorAll("text")]
      .filter(t => t.textContent.trim() && getComputedStyle(t).opacity !== "0" && t.getAttribute("opacity") !== "0")
      .map(t => ({text: t.textContent, role: t.parentElement.getAttribute("class") || "",
                  box: box(t.getBoundingClientRect())}));
    const marks = name => [...svg.querySelectorAll(`g.${name} > path`)].filter(drawn)
      .map(m => box(m.getBoundingClientRect()));
    result[figure.dataset.chart] = {
      ...box(svg.getBoundingClientRect()),
      width: svg.getBoundingClientRect().width, height: svg.getBoundingClientRect().height,
      marks: [...svg.querySelectorAll("path, rect, circle, line")].filter(drawn).length,
      bars: [...svg.querySelectorAll("g.mark-rect.role-mark > path")].filter(drawn).length,
      texts: texts, land: marks("land_marks"), circles: marks("regions_marks"),
      caption: (figure.querySelector("figcaption") || {}).textContent || "",
    };
  }
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def realistic_warehouse(tmp_path_factory) -> Path:
    """The `realistic` preset (120 projects, every region): long names, crowded map."""
    path = tmp_path_factory.mktemp("realistic") / "neon_api.duckdb"
    with Simulator(Account.generate(PRESETS["realistic"])) as simulator:
        elt(path, client_for(simulator), show_progress=False)
    return path


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


@pytest.fixture(scope="module", params=["demo", "realistic"])
def laid_out(request, tmp_path_factory) -> tuple[Path, dict]:
    """(warehouse, what Chromium measured in its report), for each account."""
    warehouse = request.getfixturevalue(f"{request.param}_warehouse")
    folder = tmp_path_factory.mktemp(f"laid-out-{request.param}")
    page = write(DuckDBTarget(warehouse), folder / "report.html")
    return warehouse, lay_out(page, folder)


def lay_out(page: Path, folder: Path) -> dict:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    probed = folder / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={folder / 'profile'}",
            "--window-size=1280,4000",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    )


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


@needs_chromium
def expected_charts(warehouse: Path) -> set[str]:
    """The charts of every report, and one of the projects behind each organization's bill."""
    billed = query(warehouse, "select distinct org_id from marts.project_costs")
    return EXPECTED_CHARTS | {f"project-costs-{org_id}" for (org_id,) in billed}


def test_every_chart_draws_in_headless_chromium(laid_out):
    warehouse, charts = laid_out
    assert set(charts) == expected_charts(warehouse)
    for name, drawn in charts.items():
        assert drawn["width"] > 100 and drawn["height"] > 100, name
        assert drawn["marks"] > 3, name


@needs_chromium
def test_no_text_is_clipped_by_its_chart(laid_out):
    """Every label lies inside its SVG: the widths the charts were laid out with are the widths the
    browser draws (a chart measured in one font and drawn in a wider one cuts its labels off)."""
    _, charts = laid_out
    clipped = [
        (name, text["text"])
        for name, chart in charts.items()
        for text in chart["texts"]
        if text["box"]["left"] < chart["left"] - 0.5
        or text["box"]["right"] > chart["right"] + 0.5
        or text["box"]["top"] < chart["top"] - 0.5
        or text["box"]["bottom"] > chart["bottom"] + 0.5
    ]
    assert not clipped


# What a reader sees after a quantity in the unit Neon bills it in (the seed neon_metric_units).
SHOWN_UNITS = {"CU-hour": "CU-hours", "GB-month": "GB-months", "GB": "GB", "branch-month": "branch-months"}
WORDED_ROLES = ("role-title-text", "role-axis-title", "role-legend-title", "role-legend-label")


def texts(chart: dict, role: str) -> list[dict]:
    return [t for t in chart["texts"] if role in t["role"]]


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("\u2212", "-"))
    except ValueError:
        return None


def in_scale(shown: float, actual: float) -> bool:
    """An axis or legend whose largest label is `shown` draws values up to `actual`, in the same unit."""
    return 0.5 <= shown / actual <= 2


@needs_chromium
def test_titles_and_legends_speak_in_words(laid_out):
    warehouse, charts = laid_out
    identifiers = {
        name
        for (name,) in query(
            warehouse,
            """select column_name from information_schema.columns where table_schema = 'marts'
               union select metric_name from marts.daily_consumption""",
        )
        if "_" in name
    }
    worded = [
        (name, t["text"])
        for name, chart in charts.items()
        for role in WORDED_ROLES
        for t in texts(chart, role)
    ]
    assert {name for name, _ in worded} == expected_charts(warehouse)
    assert [(name, text) for name, text in worded if identifiers & set(re.findall(r"\w+", text))] == []


@needs_chromium
def test_daily_consumption_is_charted_in_the_units_neon_bills(laid_out):
    """CU-hours, GB-months (decimal GB, a 744-hour month), GB and branch-months, each panel's axis
    reaching the metric's largest day: never byte-hours divided by GiB."""
    warehouse, charts = laid_out
    peaks = query(
        warehouse,
        """select metric_name, billing_unit, max(total) / max(raw_units_per_billing_unit) from (
               select consumption_date, metric_name, sum(metric_value) as total
               from marts.daily_consumption group by consumption_date, metric_name
           ) as daily
           inner join staging.neon_metric_units using (metric_name)
           group by metric_name, billing_unit""",
    )
    chart = charts["consumption"]
    titles = sorted(texts(chart, "role-title-text"), key=lambda t: t["box"]["top"])
    panels = []  # (title, largest value label of the panel's axis), top to bottom
    for title, below in zip(titles, [*titles[1:], None], strict=True):
        bottom = below["box"]["top"] if below else chart["bottom"]
        ticks = [
            number(t["text"])
            for t in texts(chart, "role-axis-label")
            if title["box"]["bottom"] <= t["box"]["top"] < bottom and number(t["text"]) is not None
        ]
        if ticks:
            panels.append((title["text"], max(ticks)))
    assert len(panels) == len(peaks) > 0
    assert len({title for title, _ in panels}) == len(panels)
    for metric, unit, peak in peaks:
        shown = SHOWN_UNITS[unit]
        matching = [
            title
            for title, top in panels
            if title.endswith(f"({shown})") and (in_scale(top, peak) if peak else top >= 0)
        ]
        assert matching, (metric, unit, panels)


@needs_chromium
def test_the_map_legend_is_in_gib(laid_out):
    warehouse, charts = laid_out
    [(largest,)] = query(warehouse, "select max(total_logical_size_bytes) from marts.regional_footprint")
    legend = charts["regions-map"]
    sizes = [number(t["text"]) for t in texts(legend, "role-legend-label") if number(t["text"]) is not None]
    assert any("GiB" in t["text"] for t in texts(legend, "role-legend-title"))
    assert sizes and in_scale(max(sizes), largest / 2**30)


@needs_chromium
def test_no_label_is_cut_short(laid_out):
    """Vega ends a label longer than its limit with "…": two long names then read alike."""
    _, charts = laid_out
    assert [
        (name, t["text"]) for name, chart in charts.items() for t in chart["texts"] if t["text"].endswith("…")
    ] == []


@needs_chromium
def test_each_stale_branch_charted_has_a_label_of_its_own(laid_out):
    warehouse, charts = laid_out
    chart = charts["stale-branches"]
    labels = [t["text"] for t in texts(chart, "role-axis-label") if number(t["text"]) is None]
    charted = query(
        warehouse,
        "select cleanup_rank, project_name, branch_name from marts.stale_branches order by cleanup_rank limit ?",
        [chart["bars"]],
    )
    assert len(set(labels)) == len(labels) == len(charted) > 0
    for rank, project, branch in charted:
        assert f"#{rank} {project} / {branch}" in labels


@needs_chromium
def test_each_project_charted_has_a_label_of_its_own(laid_out):
    warehouse, charts = laid_out
    chart = charts["projects"]  # two bars per project: logical size and compute time
    labels = [t["text"] for t in texts(chart, "role-axis-label") if number(t["text"]) is None]
    names = {name for (name,) in query(warehouse, "select project_name from marts.projects")}
    assert len(set(labels)) == len(labels) == chart["bars"] / 2 > 0
    assert all(label in names or label.rsplit(" (", 1)[0] in names for label in labels)


def test_projects_that_share_a_name_get_labels_of_their_own():
    """Neon does not make project names unique, nor does a shortened name stay unique."""
    long = "x" * 40
    projects = [
        {
            "project_id": f"p-{i}",
            "project_name": name,
            "logical_size_bytes": 2**30,
            "compute_time_seconds": 60,
        }
        for i, name in enumerate(["web-app", "web-app", "api", f"{long}-a-{long}", f"{long}-b-{long}"])
    ]
    svg = project_chart(projects)[2]
    drawn = [
        html.unescape(text)
        for group in re.findall(r'class="mark-text role-axis-label".*?</g>', svg, re.S)
        for text in re.findall(r">([^<>]+)</text>", group)
    ]
    shown = [text for text in drawn if number(text) is None]
    assert len(set(shown)) == len(shown) == len(projects)
    assert all(len(label) <= 60 for label in shown)


def land_shapes() -> list[dict]:
    """The land shapes of the map data installed with neon_elt, one per country."""
    return json.loads((files("neon_elt") / ATLAS).read_text())["objects"][LAND]["geometries"]


def overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


def covers(box: dict, circle: dict) -> bool:
    """Whether a text's box covers part of a drawn circle (its box's inscribed circle)."""
    cx, cy = (circle["left"] + circle["right"]) / 2, (circle["top"] + circle["bottom"]) / 2
    r = (circle["right"] - circle["left"]) / 2
    nx, ny = min(max(cx, box["left"]), box["right"]), min(max(cy, box["top"]), box["bottom"])
    return math.hypot(nx - cx, ny - cy) < r - 0.5


@needs_chromium
def test_the_map_draws_the_land(laid_out):
    _, charts = laid_out
    land = charts["regions-map"]["land"]
    assert len(land) == len(land_shapes()) > 100
    assert max(box["right"] for box in land) - min(box["left"] for box in land) > 600


@needs_chromium
def test_the_map_names_every_region_in_use_once_without_overlaps(laid_out):
    warehouse, charts = laid_out
    chart = charts["regions-map"]
    regions = query(
        warehouse,
        """select region_id, project_count, geo_latitude is not null and geo_longitude is not null
           from marts.regional_footprint where project_count > 0""",
    )
    labels = texts(chart, "labels_marks")
    assert len(chart["circles"]) == sum(1 for *_, located in regions if located)
    for region_id, projects, located in regions:
        named = [t for t in labels if t["text"].split(" ")[0] == region_id]
        in_caption = f"{region_id} ({projects})" in chart["caption"]
        assert (len(named) == 1 and f"({projects})" in named[0]["text"]) != in_caption, region_id
        assert located or in_caption, region_id
    for i, label in enumerate(labels):
        assert not [other["text"] for other in labels[i + 1 :] if overlap(label["box"], other["box"])], label
        assert not [circle for circle in chart["circles"] if covers(label["box"], circle)], label


def test_crowded_labels_never_overlap_and_none_is_lost():
    """Twenty-four regions on one spot, and six in a corner: each label either has a place that
    touches no other label and no circle, or is handed back to be listed under the map."""
    points = [
        {"x": x, "y": y, "r": 3 + i % 9, "label": f"region-{i:02d}-of-a-crowd ({i})"}
        for i, (x, y) in enumerate([(300, 120)] * 24 + [(755, 375)] * 6)
    ]
    labels, unplaced = place_labels(points, 760, 380)
    assert len(labels) + len(unplaced) == len(points) and len(labels) >= 2 * len(points) / 3
    assert {label["text"] for label in labels} | {p["label"] for p in unplaced} == {
        p["label"] for p in points
    }
    char = 0.61 * 11
    boxes = [
        {
            "left": label["left"],
            "right": label["left"] + len(label["text"]) * char,
            "top": label["middle"] - 7,
            "bottom": label["middle"] + 7,
        }
        for label in labels
    ]
    for i, box in enumerate(boxes):
        assert 0 <= box["left"] and box["right"] <= 760 and 0 <= box["top"] and box["bottom"] <= 380
        assert not any(overlap(box, other) for other in boxes[i + 1 :])
        circles = [
            {
                "left": p["x"] - p["r"],
                "right": p["x"] + p["r"],
                "top": p["y"] - p["r"],
                "bottom": p["y"] + p["r"],
            }
            for p in points
        ]
        assert not any(covers(box, circle) for circle in circles)


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


# ------------------------------------------------------------------------------------- what it costs


def table_rows(page: str, heading: str) -> list[list[str]]:
    """The cells of the first table after `heading`, row by row."""
    section = page.split(f"<h2>{heading}</h2>", 1)[1].split("</section>", 1)[0]
    return body_rows(section.split("<tbody>", 1)[1].split("</tbody>", 1)[0])


def body_rows(body: str) -> list[list[str]]:
    return [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", body)
    ]


def table(page: str, css_class: str, **data: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header cells, body rows, footer cells) of the table of `css_class` with these data-
    attributes."""
    attributes = "".join(f' data-{key}="{value}"' for key, value in data.items())
    found = re.search(rf'<table class="{css_class}"{attributes}>(.*?)</table>', page, re.S)
    assert found, (css_class, data)
    head = re.search(r"<thead>(.*?)</thead>", found.group(1), re.S).group(1)
    foot = re.search(r"<tfoot>(.*?)</tfoot>", found.group(1), re.S)
    return (
        [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", head)],
        body_rows(re.search(r"<tbody>(.*?)</tbody>", found.group(1), re.S).group(1)),
        [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", foot.group(1))] if foot else [],
    )


def organization(page: str, org_id: str) -> str:
    """An organization's part of "What it costs"."""
    return page.split(f'<div class="org-costs" data-org="{org_id}">', 1)[1].split("</div>", 1)[0]


def shows_usd(cell: str, value) -> bool:
    """Whether a cell shows `value` dollars to the cent ("<$0.01" for less than half a cent that
    is not nothing, "no rate" for NULL)."""
    if value is None:
        return cell == "no rate"
    value = float(value)
    if 0 < abs(value) < 0.005:
        return cell.endswith("<$0.01")
    shown = number(cell.replace("$", "").replace("+", ""))
    return shown is not None and abs(shown - value) <= 0.0051


def shows_amount(cell: str, value) -> bool:
    """Whether a cell shows `value` to the two decimals or three significant digits shown."""
    shown, value = number(cell), float(value)
    return shown is not None and abs(shown - value) <= max(0.0051, abs(value) * 0.0051)


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
    words = {
        "never_suspends": "never suspends",
        "has_oversized_minimum": "minimum above 0.25 CU",
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


@needs_chromium
def test_branch_costs_are_charted_in_dollars_cu_hours_and_gb_months(laid_out):
    """Each panel's axis reaches the largest value charted, in the unit its title names."""
    warehouse, charts = laid_out
    chart = charts["branch-costs"]
    charted = query(
        warehouse,
        """select estimated_cost_last_30_days, cu_hours_last_30_days, storage_gb_months_last_30_days
           from marts.branch_costs where cu_hours_last_30_days is not null
           order by estimated_cost_last_30_days desc nulls last, cu_hours_last_30_days desc, branch_id limit 15""",
    )
    panels = ("Estimated cost (USD)", "Compute (CU-hours)", "Storage (GB-months)")
    headers = {t["text"]: t["box"] for t in texts(chart, "role-title-text") if t["text"].endswith(")")}
    assert set(headers) == set(panels)
    ticks = {name: [] for name in headers}
    for label in texts(chart, "role-axis-label"):
        value = number(label["text"])
        if value is None:
            continue
        middle = (label["box"]["left"] + label["box"]["right"]) / 2
        nearest = min(headers, key=lambda n: abs((headers[n]["left"] + headers[n]["right"]) / 2 - middle))
        ticks[nearest].append(value)
    for i, panel in enumerate(panels):
        assert in_scale(max(ticks[panel]), max(float(row[i]) for row in charted)), panel
    assert chart["bars"] == 3 * len(charted)


# ------------------------------------------------------------------------- who can reach the estate


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
