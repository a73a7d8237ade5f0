"""The report's charts: Vega-Lite specifications rendered to SVG here (vl-convert, no browser, no
network) and inlined, so the page opens anywhere without a connection and without JavaScript."""

from __future__ import annotations

from typing import Any, NamedTuple

import vl_convert

from ..views import GIB, METRICS, VEGA_LITE, consumption_panel
from .words import COST_KINDS, distinct_labels, label, window_words

# Charts are laid out with the text widths vl-convert measures, and browsers draw in whatever font
# they have: a label measured in a narrow font and drawn in a wider one runs off its chart. DejaVu
# Sans is Linux's usual sans-serif and wider than Arial or Helvetica, so where it is installed the
# layout is exact there and roomy elsewhere; without it, vl-convert measures its own Liberation Sans
# (Arial's metrics), exact on macOS and Windows.
FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"
STALE_BARS = 15  # the clean-up table below the chart lists them all
PROJECT_BARS = 20
COST_BARS = 15  # branches charted; the table below the chart lists more


class Chart(NamedTuple):
    key: str  # data-chart of its <figure>
    title: str  # its section's heading
    svg: str
    caption: str = ""


def svg(spec: dict[str, Any]) -> str:
    spec = {"$schema": VEGA_LITE, "config": {"font": FONT, "view": {"stroke": None}}, **spec}
    return vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])  # every byte is in the spec: fetch nothing


def json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in rows]


def status(branch: dict) -> str:
    return "stale" if branch["is_stale"] else "default" if branch["is_default"] else "in use"


def region_chart(regions: list[dict]) -> Chart:
    return Chart(
        "regions",
        "Regional footprint",
        svg(
            {
                "title": "Projects and branches per region",
                "data": {"values": json_safe(regions)},
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
        ),
    )


def age_chart(branches: list[dict]) -> Chart:
    return Chart(
        "branch-ages",
        "Branch age distribution",
        svg(
            {
                "title": "Branches by age",
                "data": {"values": [{"age_days": b["age_days"], "status": status(b)} for b in branches]},
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


def stale_chart(stale: list[dict]) -> Chart:
    # "#rank" ties each bar to its row in the clean-up table, and keeps same-named branches apart
    bars = [
        {
            "branch": f"#{r['cleanup_rank']} "
            + label(f"{label(r['project_name'])} / {label(r['branch_name'])}"),
            "gib": (r["logical_size_bytes"] or 0) / GIB,
        }
        for r in stale[:STALE_BARS]
    ]
    return Chart(
        "stale-branches",
        "Stale branches: storage reclaimable",
        svg(
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


def bars_side_by_side(bar: str, labels: list[str], panel: str, panels: list[str]) -> dict:
    """Horizontal bars of `value`, one per `bar` in the order of `labels`, in a panel per measure
    (`panel`, ordered as `panels`), each panel with its own scale."""
    return {
        "mark": "bar",
        "encoding": {
            "y": {"field": bar, "type": "nominal", "sort": labels, "title": None, "axis": {"labelLimit": 0}},
            "x": {"field": "value", "type": "quantitative", "title": None},
            "column": {
                "field": panel,
                "type": "nominal",
                "title": None,
                "sort": panels,
                "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
            },
        },
        "resolve": {"scale": {"x": "independent"}},
    }


def project_chart(projects: list[dict]) -> Chart:
    top = projects[:PROJECT_BARS]
    labels = distinct_labels([p["project_name"] for p in top], [p["project_id"] for p in top])
    top = [{**p, "project": label} for p, label in zip(top, labels, strict=True)]
    return Chart(
        "projects",
        "Storage and compute by project",
        svg(
            {
                "title": f"The {len(top)} largest projects: logical size and compute time",
                "data": {"values": json_safe(top)},
                "transform": [
                    {"calculate": f"datum.logical_size_bytes / {GIB}", "as": "Logical size (GiB)"},
                    {"calculate": "datum.compute_time_seconds / 3600", "as": "Compute time (hours)"},
                    {"fold": ["Logical size (GiB)", "Compute time (hours)"], "as": ["measure", "value"]},
                ],
                **bars_side_by_side(
                    "project", labels, "measure", ["Logical size (GiB)", "Compute time (hours)"]
                ),
                "width": 260,
            }
        ),
    )


def consumption_chart(daily: list[dict]) -> Chart:
    order = {name: i for i, name in enumerate(METRICS)}
    panels = {}
    values = []
    for row in daily:
        panel = consumption_panel(row["metric_name"], row["billing_unit"])
        panels[panel] = (order.get(row["metric_name"], len(order)), panel)
        values.append({"date": row["consumption_date"], "panel": panel, "value": row["total"] or 0})
    return Chart(
        "consumption",
        "Daily consumption",
        svg(
            {
                "title": "Daily consumption, all projects",
                "data": {"values": json_safe(values)},
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


def project_cost_chart(key: str, title: str, costs: list[dict]) -> Chart:
    """Each project's cost in one period, stacked by kind: which project drove the bill."""
    labels = distinct_labels(
        [r["project_name"] or f"deleted {r['project_id']}" for r in costs], [r["project_id"] for r in costs]
    )
    values = [
        {"project": label, "kind": words, "usd": r[column] or 0}
        for r, label in zip(costs, labels, strict=True)
        for column, words in COST_KINDS.items()
    ]
    return Chart(
        key,
        title,
        svg(
            {
                "title": title,
                "data": {"values": values},
                "mark": "bar",
                "encoding": {
                    "y": {
                        "field": "project",
                        "type": "nominal",
                        "sort": labels,
                        "title": None,
                        "axis": {"labelLimit": 0},
                    },
                    "x": {
                        "field": "usd",
                        "type": "quantitative",
                        "stack": "zero",
                        "title": "USD",
                        "axis": {"format": "$,.2~f"},
                    },
                    "color": {
                        "field": "kind",
                        "type": "nominal",
                        "title": None,
                        "scale": {"domain": list(COST_KINDS.values())},
                        "legend": {"orient": "top"},
                    },
                    "order": {"field": "kind", "sort": "ascending"},
                    "tooltip": [
                        {"field": "project", "title": "Project"},
                        {"field": "kind", "title": "Kind"},
                        {"field": "usd", "title": "USD", "format": "$,.2f"},
                    ],
                },
                "width": 560,
            }
        ),
    )


def branch_cost_chart(costs: list[dict]) -> Chart:
    """The branches that cost the most over the cost window (`costs` comes in that order): their
    estimated cost, CU-hours and storage in GB-months."""
    top = [r for r in costs if r["cu_hours_last_30_days"] is not None][:COST_BARS]
    labels = distinct_labels(
        [f"{label(r['project_name'])} / {label(r['branch_name'])}" for r in top],
        [r["branch_id"] for r in top],
    )
    panels = {
        "Estimated cost (USD)": "estimated_cost_last_30_days",
        "Compute (CU-hours)": "cu_hours_last_30_days",
        "Storage (GB-months)": "storage_gb_months_last_30_days",
    }
    values = [
        {"branch": label, "panel": panel, "value": r[column] or 0}
        for r, label in zip(top, labels, strict=True)
        for panel, column in panels.items()
    ]
    first = top[0] if top else costs[0]
    return Chart(
        "branch-costs",
        "Cost per branch",
        svg(
            {
                "title": f"The {len(top)} branches that cost the most, "
                + window_words(first["window_start_date"], first["window_end_date"]),
                "data": {"values": values},
                **bars_side_by_side("branch", labels, "panel", list(panels)),
                "width": 170,
            }
        ),
    )
