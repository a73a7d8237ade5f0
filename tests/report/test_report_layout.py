"""`make report`: a self-contained page whose charts really draw, checked in headless Chromium.

Chromium lays out each report once (for the demo account and for the 120-project `realistic` one,
whose long names and many regions are what break layouts); a probe injected into a copy of the page
measures every drawn text and mark, and the tests below read those measurements."""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from expected import query
from neon_elt.report import write
from neon_elt.report.charts import project_chart
from neon_elt.report.geo import LAND, place_labels, world_atlas
from neon_elt.targets import DuckDBTarget
from report_helpers import EXPECTED_CHARTS, number

# runs the pipeline, dbt or a server: `make test-fast` leaves it out
pytestmark = pytest.mark.slow


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
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


def expected_charts(warehouse: Path) -> set[str]:
    """The charts of every report, and one of the projects behind each organization's bill."""
    billed = query(warehouse, "select distinct org_id from marts.project_costs")
    return EXPECTED_CHARTS | {f"project-costs-{org_id}" for (org_id,) in billed}


@needs_chromium
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
    """The land shapes of the map data installed with the report, one per country."""
    return world_atlas()["objects"][LAND]["geometries"]


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
