"""`make report`: a self-contained page whose charts really draw, checked in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from expected import query
from neon_elt.report import write
from neon_elt.targets import DuckDBTarget

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXPECTED_CHARTS = {"regions", "regions-map", "branch-ages", "stale-branches", "projects", "consumption"}

# Injected into a copy of the report (the report itself has no script): measures every chart's
# drawn marks once the page has laid out, and writes the result into the DOM for --dump-dom.
PROBE = """
<script>
window.addEventListener("load", () => {
  const result = {};
  for (const figure of document.querySelectorAll("figure.chart")) {
    const svg = figure.querySelector("svg");
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = svg ? [...svg.querySelectorAll("path, rect, circle, line")]
      .filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; }).length : 0;
    result[figure.dataset.chart] = {width: box.width, height: box.height, marks: marks};
  }
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


@pytest.fixture(scope="module")
def report(demo_warehouse, tmp_path_factory) -> Path:
    return write(DuckDBTarget(demo_warehouse), tmp_path_factory.mktemp("report") / "report.html")


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


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
def test_every_chart_draws_in_headless_chromium(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
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
            f"--user-data-dir={tmp_path / 'profile'}",
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
    charts = json.loads(found.group(1).replace("&quot;", '"'))
    assert set(charts) == EXPECTED_CHARTS
    for name, drawn in charts.items():
        assert drawn["width"] > 100 and drawn["height"] > 100, name
        assert drawn["marks"] > 3, name
