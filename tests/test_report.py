"""`make report`: a self-contained page whose charts really draw, checked in headless Chromium.

Chromium lays out each report once (for the demo account and for the 120-project `realistic` one,
whose long names and many regions are what break layouts); a probe injected into a copy of the page
measures every drawn text and mark, and the tests below read those measurements."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import client_for
from expected import query
from neon_elt.report import write
from neon_elt.run import elt
from neon_elt.targets import DuckDBTarget
from neon_simulator import PRESETS, Account, Simulator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXPECTED_CHARTS = {"regions", "regions-map", "branch-ages", "stale-branches", "projects", "consumption"}
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


def test_the_report_lists_every_stale_branch(report, demo_warehouse):
    stale = query(demo_warehouse, "select branch_name from marts.stale_branches")
    table = report.read_text().split("<h2>Clean-up list</h2>", 1)[1]
    assert table.count("<tr><td>") == len(stale) > 0
    for (name,) in stale:
        assert f"<td>{name}</td>" in table


@needs_chromium
def test_every_chart_draws_in_headless_chromium(laid_out):
    _, charts = laid_out
    assert set(charts) == EXPECTED_CHARTS
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
