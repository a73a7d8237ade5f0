"""`make report`: one self-contained HTML page drawn from the marts.

Charts are Vega-Lite specifications rendered to SVG here (vl-convert, no browser, no network) and
inlined, so the page opens anywhere without a connection and without JavaScript.
"""

from __future__ import annotations

import html
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import vl_convert

VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"  # the spec's $schema id; never fetched
GIB = 2**30
# Charts are laid out with the text widths vl-convert measures, and browsers draw in whatever font
# they have: a label measured in a narrow font and drawn in a wider one runs off its chart. DejaVu
# Sans is Linux's usual sans-serif and wider than Arial or Helvetica, so where it is installed the
# layout is exact there and roomy elsewhere; without it, vl-convert measures its own Liberation Sans
# (Arial's metrics), exact on macOS and Windows.
FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"

# Words for what the marts name in identifiers. Consumption metrics, in the order the chart shows
# them; a metric Neon adds later gets its name with spaces until it is named here.
METRICS = {
    "compute_unit_seconds": "Compute",
    "root_branch_bytes_month": "Root branch storage",
    "child_branch_bytes_month": "Child branch storage",
    "instant_restore_bytes_month": "Instant restore storage",
    "snapshot_storage_bytes_month": "Snapshot storage",
    "public_network_transfer_bytes": "Public network transfer",
    "private_network_transfer_bytes": "Private network transfer",
    "extra_branches_month": "Extra branches",
}
# The unit the mart states for a metric (daily_consumption.metric_unit) -> the unit shown, and how
# many of the first make one of the second.
UNITS = {
    "CU-seconds": ("CU-hours", 3600),
    "byte-months": ("GiB-months", GIB),
    "bytes": ("GiB", GIB),
    "branch-months": ("branch-months", 1),
}
PROVIDERS = {"aws": "AWS", "azure": "Azure"}
STALE_BARS = 15  # the clean-up table below the chart lists them all
PROJECT_BARS = 20
# Bar labels are never cut by the chart (Vega ends a label past its limit with "…", and two long
# names then read alike); a name longer than this loses its middle instead, keeping both ends.
LABEL_CHARS = 60


def _svg(spec: dict[str, Any]) -> str:
    spec = {"$schema": VEGA_LITE, "config": {"font": FONT, "view": {"stroke": None}}, **spec}
    return vl_convert.vegalite_to_svg(spec)


def _plain(value: Any) -> Any:
    """Decimals (PostgreSQL's numeric sums) as int or float, so charts and arithmetic treat them alike."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    safe = []
    for row in rows:
        safe.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
    return safe


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """At most `limit` characters: the middle of a long text gives way, so that both ends stay."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def distinct_labels(names: list[str], ids: list[str]) -> list[str]:
    """One label per row: a name shared by two rows (Neon does not make project names unique), or
    shortened alike, carries its row's id."""
    short = [shorten(name) for name in names]
    counts = Counter(short)
    return [
        label if counts[label] == 1 else f"{shorten(name, LABEL_CHARS - len(id_) - 3)} ({id_})"
        for label, name, id_ in zip(short, names, ids, strict=True)
    ]


def consumption_panel(metric_name: str, metric_unit: str | None) -> tuple[str, float]:
    """The title of a metric's panel, in words and the unit shown, and the divisor into that unit."""
    words = METRICS.get(metric_name) or metric_name.replace("_", " ").capitalize()
    unit, per = UNITS.get(metric_unit or "", (metric_unit, 1))
    return (f"{words} ({unit})" if unit else words), per


def regional_charts(regions: list[dict]) -> list[tuple[str, str, str]]:
    used = [r for r in regions if r["project_count"]]
    bars = _svg(
        {
            "title": "Projects and branches per region",
            "data": {"values": _json_safe(regions)},
            "transform": [
                {"calculate": "datum.project_count", "as": "Projects"},
                {"calculate": "datum.branch_count", "as": "Branches"},
                {"fold": ["Projects", "Branches"], "as": ["what", "count"]},
            ],
            "mark": "bar",
            "encoding": {
                "y": {"field": "region_id", "type": "nominal", "sort": "-x", "title": None},
                "x": {"field": "count", "type": "quantitative", "title": None},
                "color": {
                    "field": "what",
                    "type": "nominal",
                    "title": None,
                    "scale": {"domain": ["Projects", "Branches"]},
                },
                "yOffset": {"field": "what", "sort": ["Projects", "Branches"]},
            },
            "width": 520,
        }
    )
    located = [
        {
            **r,
            "size_gib": r["total_logical_size_bytes"] / GIB,
            "provider": PROVIDERS.get(r["cloud_provider"], r["cloud_provider"]),
        }
        for r in used
        if r["geo_latitude"] is not None and r["geo_longitude"] is not None
    ]
    world = _svg(
        {
            "title": "Where the projects run: region (projects), circle area = logical size, 30° grid",
            "width": 620,
            "height": 320,
            "projection": {"type": "equirectangular"},
            "layer": [
                {
                    "data": {"graticule": {"step": [30, 30]}},
                    "mark": {"type": "geoshape", "stroke": "#ddd", "fill": None},
                },
                {
                    "data": {"values": _json_safe(located)},
                    "mark": {"type": "circle", "opacity": 0.7},
                    "encoding": {
                        "longitude": {"field": "geo_longitude", "type": "quantitative"},
                        "latitude": {"field": "geo_latitude", "type": "quantitative"},
                        "size": {"field": "size_gib", "type": "quantitative", "title": "Logical size (GiB)"},
                        "color": {"field": "provider", "type": "nominal", "title": "Cloud"},
                        "tooltip": [{"field": "region_id"}, {"field": "project_count"}],
                    },
                },
                {
                    # no coastlines (they would need a map file from the network): each point is named
                    "data": {"values": _json_safe(located)},
                    "mark": {"type": "text", "align": "left", "dx": 9, "fontSize": 10, "color": "#333"},
                    "encoding": {
                        "longitude": {"field": "geo_longitude", "type": "quantitative"},
                        "latitude": {"field": "geo_latitude", "type": "quantitative"},
                        "text": {"field": "label", "type": "nominal"},
                    },
                    "transform": [
                        {"calculate": "datum.region_id + ' (' + datum.project_count + ')'", "as": "label"}
                    ],
                },
            ],
        }
    )
    return [
        ("regions", "Regional footprint", bars),
        ("regions-map", "Regional footprint on the globe", world),
    ]


def age_chart(branches: list[dict]) -> tuple[str, str, str]:
    return (
        "branch-ages",
        "Branch age distribution",
        _svg(
            {
                "title": "Branches by age",
                "data": {"values": _json_safe(branches)},
                "mark": "bar",
                "encoding": {
                    "x": {
                        "field": "age_days",
                        "type": "quantitative",
                        "bin": {"maxbins": 20},
                        "title": "Age (days)",
                    },
                    "y": {"aggregate": "count", "type": "quantitative", "title": "Branches"},
                    "color": {"field": "status", "type": "nominal", "title": "Status"},
                },
                "width": 560,
            }
        ),
    )


def stale_chart(stale: list[dict]) -> tuple[str, str, str]:
    # "#rank" ties each bar to its row in the clean-up table, and keeps same-named branches apart
    bars = [
        {
            "branch": f"#{r['cleanup_rank']} " + shorten(f"{r['project_name']} / {r['branch_name']}"),
            "gib": (r["logical_size_bytes"] or 0) / GIB,
        }
        for r in stale[:STALE_BARS]
    ]
    return (
        "stale-branches",
        "Stale branches: storage reclaimable",
        _svg(
            {
                "title": f"The {len(bars)} largest stale branches (GiB reclaimable; # as in the clean-up list)",
                "data": {"values": bars},
                "mark": "bar",
                "encoding": {
                    "y": {
                        "field": "branch",
                        "type": "nominal",
                        "sort": [bar["branch"] for bar in bars],
                        "title": None,
                        "axis": {"labelLimit": 0},
                    },
                    "x": {"field": "gib", "type": "quantitative", "title": "GiB"},
                },
                "width": 520,
            }
        ),
    )


def project_chart(projects: list[dict]) -> tuple[str, str, str]:
    top = projects[:PROJECT_BARS]
    labels = distinct_labels([p["project_name"] for p in top], [p["project_id"] for p in top])
    top = [{**p, "project": label} for p, label in zip(top, labels, strict=True)]
    return (
        "projects",
        "Storage and compute by project",
        _svg(
            {
                "title": f"The {len(top)} largest projects: logical size and compute time",
                "data": {"values": _json_safe(top)},
                "transform": [
                    {"calculate": "datum.logical_size_bytes / 1073741824", "as": "Logical size (GiB)"},
                    {"calculate": "datum.compute_time_seconds / 3600", "as": "Compute time (hours)"},
                    {"fold": ["Logical size (GiB)", "Compute time (hours)"], "as": ["measure", "value"]},
                ],
                "mark": "bar",
                "encoding": {
                    "y": {
                        "field": "project",
                        "type": "nominal",
                        "sort": labels,
                        "title": None,
                        "axis": {"labelLimit": 0},
                    },
                    "x": {"field": "value", "type": "quantitative", "title": None},
                    "column": {
                        "field": "measure",
                        "type": "nominal",
                        "title": None,
                        "sort": ["Logical size (GiB)", "Compute time (hours)"],
                        "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
                    },
                },
                "resolve": {"scale": {"x": "independent"}},
                "width": 260,
            }
        ),
    )


def consumption_chart(daily: list[dict]) -> tuple[str, str, str]:
    order = {name: i for i, name in enumerate(METRICS)}
    panels = {}
    values = []
    for row in daily:
        panel, per = consumption_panel(row["metric_name"], row["metric_unit"])
        panels[panel] = (order.get(row["metric_name"], len(order)), panel)
        values.append({"date": row["consumption_date"], "panel": panel, "value": (row["total"] or 0) / per})
    return (
        "consumption",
        "Daily consumption",
        _svg(
            {
                "title": "Daily consumption, all projects",
                "data": {"values": _json_safe(values)},
                "mark": {"type": "line", "point": True},
                "encoding": {
                    "x": {"field": "date", "type": "temporal", "title": None, "axis": {"format": "%b %-d"}},
                    "y": {"field": "value", "type": "quantitative", "title": None},
                    "row": {
                        "field": "panel",
                        "type": "nominal",
                        "title": None,
                        "sort": [panel for _, panel in sorted(panels.values())],
                        "header": {
                            "labelAngle": 0,
                            "labelOrient": "top",
                            "labelAnchor": "start",
                            "labelFontSize": 11,
                            "labelFontWeight": "bold",
                        },
                    },
                },
                "resolve": {"scale": {"y": "independent"}},
                "width": 560,
                "height": 90,
            }
        ),
    )


def build(target: Any) -> str:
    direct = target.direct()

    def rows(sql: str) -> list[dict[str, Any]]:
        return [{k: _plain(v) for k, v in row.items()} for row in direct.rows(sql)]

    regions = rows("select * from marts.regional_footprint order by project_count desc")
    branches = rows("""
            select age_days, case when is_stale then 'stale' when is_default then 'default'
                                  else 'in use' end as status
        from marts.project_branch_inventory""")
    stale = rows("select * from marts.stale_branches order by cleanup_rank")
    projects = rows("select * from marts.projects order by logical_size_bytes desc nulls last, project_id")
    daily = rows("""
        select consumption_date, metric_name, metric_unit, sum(metric_value) as total
        from marts.daily_consumption
        group by consumption_date, metric_name, metric_unit
        order by consumption_date""")

    charts = regional_charts(regions) + [age_chart(branches), stale_chart(stale), project_chart(projects)]
    if daily:
        charts.append(consumption_chart(daily))

    reclaimable = sum(r["logical_size_bytes"] or 0 for r in stale)
    figures = "\n".join(
        f"<section><h2>{html.escape(title)}</h2>"
        f'<figure class="chart" data-chart="{key}">{svg}</figure></section>'
        for key, title, svg in charts
    )
    stale_rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["cleanup_rank"],
                r["project_name"],
                r["branch_name"],
                r["age_days"],
                r["days_since_activity"],
                f"{(r['logical_size_bytes'] or 0) / GIB:.2f}",
                r["endpoint_count"],
            )
        )
        + "</tr>"
        for r in stale
    )
    totals = (
        f"{sum(r['project_count'] for r in regions)} projects, {len(branches)} branches, "
        f"{len(stale)} stale ({reclaimable / GIB:.2f} GiB reclaimable), "
        f"{sum(1 for r in regions if r['project_count'])} of {len(regions)} regions in use"
    )
    return PAGE.format(
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        warehouse=html.escape(target.describe()),
        totals=html.escape(totals),
        figures=figures,
        stale_rows=stale_rows or '<tr><td colspan="7">No stale branches.</td></tr>',
        consumption_note="" if daily else "<p>No consumption history was loaded (plans without it).</p>",
    )


def write(target: Any, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(build(target), encoding="utf-8")
    tmp.replace(output)
    return output


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Neon estate report</title>
<style>
  body {{ font-family: sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
  h1 {{ margin-bottom: 0.2rem; }}
  .meta {{ color: #666; margin-top: 0; }}
  section {{ margin: 2rem 0; }}
  figure.chart {{ margin: 0; overflow-x: auto; }}
  table {{ border-collapse: collapse; font-size: 0.9rem; }}
  th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }}
  td:nth-child(n+4) {{ text-align: right; }}
</style>
</head>
<body>
<h1>Neon estate report</h1>
<p class="meta">Generated {generated} from {warehouse}. {totals}.</p>
{figures}
{consumption_note}
<section>
<h2>Clean-up list</h2>
<table>
<thead><tr><th>#</th><th>project</th><th>branch</th><th>age (days)</th><th>idle (days)</th>
<th>GiB</th><th>computes</th></tr></thead>
<tbody>
{stale_rows}
</tbody>
</table>
</section>
</body>
</html>
"""
