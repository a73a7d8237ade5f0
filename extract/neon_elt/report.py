"""`make report`: one self-contained HTML page drawn from the marts.

Charts are Vega-Lite specifications rendered to SVG here (vl-convert, no browser, no network) and
inlined, so the page opens anywhere without a connection and without JavaScript.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any, NamedTuple

import vl_convert
from neon_api_source.helpers import is_local

from .targets import DuckDBTarget

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
# The unit Neon bills a metric in (the seed neon_metric_units, `unit` of monthly_bill) -> how it
# reads after a quantity.
UNITS = {"CU-hour": "CU-hours", "GB-month": "GB-months", "GB": "GB", "branch-month": "branch-months"}
# Daily consumption in the units Neon bills: daily_consumption states Neon's raw units, and the seed
# neon_metric_units holds every conversion (decimal GB, a 744-hour month). The notebook reads it too.
DAILY_CONSUMPTION = "select * from marts.daily_consumption"
PROVIDERS = {"aws": "AWS", "azure": "Azure"}
STALE_BARS = 15  # the clean-up table below the chart lists them all
PROJECT_BARS = 20
# Bar labels are never cut by the chart (Vega ends a label past its limit with "…", and two long
# names then read alike); a name longer than this loses its middle instead, keeping both ends.
LABEL_CHARS = 60


class Chart(NamedTuple):
    key: str  # data-chart of its <figure>
    title: str  # its section's heading
    svg: str
    caption: str = ""


def _svg(spec: dict[str, Any]) -> str:
    spec = {"$schema": VEGA_LITE, "config": {"font": FONT, "view": {"stroke": None}}, **spec}
    return vl_convert.vegalite_to_svg(spec, allowed_base_urls=[])  # every byte is in the spec: fetch nothing


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


def metric_words(metric_name: str) -> str:
    return METRICS.get(metric_name) or metric_name.replace("_", " ").capitalize()


def consumption_panel(metric_name: str, billing_unit: str | None) -> str:
    """The title of a metric's panel: the metric in words, and the unit Neon bills it in."""
    unit = UNITS.get(billing_unit or "", billing_unit)
    return f"{metric_words(metric_name)} ({unit})" if unit else metric_words(metric_name)


# The map
# --------------------------------------------------------------------------------------------------
# Land is Natural Earth's 1:110m countries, shipped in this package (report_data/, whose README says
# where the file comes from), so the page needs no map service. Positions are projected here with
# the formulas of Vega's own Equal Earth projection, given to Vega as a fixed scale and translation,
# so that this module knows where each circle lands and can name every circle without two labels
# touching.

MAP_WIDTH = 760
MAP_PAD = 8
MAP_AREA = (24, 700)  # circle area in px², smallest to largest region
LABEL_SIZE = 11
# Region labels in a monospace face: every common one advances 0.6 em or less per character, so
# their width is known here without measuring a font (Consolas is narrower, DejaVu Sans Mono 0.602).
MONO = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, Courier New, monospace"
CHAR_WIDTH = 0.61 * LABEL_SIZE
LINE_HEIGHT = 1.35 * LABEL_SIZE
LABEL_KEY = "Label: region (projects); circle area: logical size"
ATLAS = "report_data/countries-110m.json"  # package data of neon_elt
LAND = "countries"  # the TopoJSON object in it that the map draws


def world_atlas() -> dict:
    """The world as TopoJSON: one shape per country, so that borders show; no Antarctica (no region
    there, and a sixth of the height)."""
    return json.loads(files(__package__).joinpath(ATLAS).read_text(encoding="utf-8"))


def topojson_points(topology: dict, collection: dict) -> list[tuple[float, float]]:
    """Every (longitude, latitude) on the outlines of a TopoJSON geometry collection."""
    (kx, ky), (dx, dy) = topology["transform"]["scale"], topology["transform"]["translate"]
    used: set[int] = set()

    def collect(arcs: Any) -> None:
        for item in arcs:
            if isinstance(item, int):
                used.add(item if item >= 0 else ~item)
            else:
                collect(item)

    for geometry in collection["geometries"]:
        collect(geometry.get("arcs", []))
    points = []
    for index in sorted(used):
        x = y = 0
        for step_x, step_y in topology["arcs"][index]:  # delta-encoded, quantized
            x, y = x + step_x, y + step_y
            points.append((x * kx + dx, y * ky + dy))
    return points


class EqualEarth(NamedTuple):
    """d3's (and so Vega's) Equal Earth projection with a fixed scale and translation."""

    scale: float
    translate: tuple[float, float]
    width: float
    height: float

    @staticmethod
    def raw(longitude: float, latitude: float) -> tuple[float, float]:
        a1, a2, a3, a4, m = 1.340264, -0.081106, 0.000893, 0.003796, math.sqrt(3) / 2
        t = math.asin(m * math.sin(math.radians(latitude)))
        t2 = t * t
        t6 = t2 * t2 * t2
        x = math.radians(longitude) * math.cos(t) / (m * (a1 + 3 * a2 * t2 + t6 * (7 * a3 + 9 * a4 * t2)))
        return x, t * (a1 + a2 * t2 + t6 * (a3 + a4 * t2))

    @classmethod
    def fit(cls, points: list[tuple[float, float]], width: float, pad: float) -> EqualEarth:
        """The projection that fits `points` in `width` pixels, `pad` pixels from every edge."""
        xs, ys = zip(*(cls.raw(lon, lat) for lon, lat in points), strict=True)
        scale = (width - 2 * pad) / (max(xs) - min(xs))
        height = math.ceil(scale * (max(ys) - min(ys)) + 2 * pad)
        return cls(scale, (pad - scale * min(xs), pad + scale * max(ys)), width, height)

    def __call__(self, longitude: float, latitude: float) -> tuple[float, float]:
        x, y = self.raw(longitude, latitude)
        return self.translate[0] + self.scale * x, self.translate[1] - self.scale * y


# Where a label may go: beside its circle (right, then left) on its own line or a few lines up or
# down, or centred above or below it, at a few distances from the circle's edge; nearest first.
# Above and below count as farther: labels there would wall a crowded spot in, leaving no way out
# for the leader lines of the labels that still need a place beside it.
LABEL_GAPS = (2, 10, 22, 38, 58, 84, 116, 156, 206)
LABEL_LINES = 10  # lines up and down, beside a circle
ABOVE_OR_BELOW = 2 * LINE_HEIGHT  # added to the distance of a label above or below its circle


def place_labels(points: list[dict], width: float, height: float) -> tuple[list[dict], list[dict]]:
    """Labels for `points` (x, y, r, label; most important first) that overlap no other label, no
    circle and no other leader line, inside width × height. A label set apart from its circle gets
    a leader line to it. Returns the labels and the points left without one."""
    boxes: list[tuple[float, float, float, float]] = []
    leaders: list[tuple[float, float, float, float]] = []
    labels, unplaced = [], []
    for point in points:
        for box in _candidates(point, width, height):
            leader = _leader(point, box)
            if _fits(box, leader, point, points, boxes, leaders):
                break
        else:
            unplaced.append(point)
            continue
        boxes.append(box)
        if leader:
            leaders.append(leader)
        labels.append(
            {
                "text": point["label"],
                "left": box[0],
                "middle": (box[1] + box[3]) / 2,
                "leader": bool(leader),
                **dict(zip(("x1", "y1", "x2", "y2"), leader or (0, 0, 0, 0), strict=True)),
            }
        )
    return labels, unplaced


def _candidates(point: dict, width: float, height: float) -> list[tuple[float, float, float, float]]:
    w, h = len(point["label"]) * CHAR_WIDTH, LINE_HEIGHT
    x, y, r = point["x"], point["y"], point["r"]
    boxes = []  # (cost, box)
    for gap in LABEL_GAPS:
        for line in sorted(range(-LABEL_LINES, LABEL_LINES + 1), key=abs):
            middle = y + line * h
            boxes.append((0, (x + r + gap, middle - h / 2, x + r + gap + w, middle + h / 2)))
            boxes.append((0, (x - r - gap - w, middle - h / 2, x - r - gap, middle + h / 2)))
        boxes.append((ABOVE_OR_BELOW, (x - w / 2, y - r - gap - h, x + w / 2, y - r - gap)))
        boxes.append((ABOVE_OR_BELOW, (x - w / 2, y + r + gap, x + w / 2, y + r + gap + h)))
    inside = [(cost, b) for cost, b in boxes if b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height]
    # nearest first; sorted() keeps the order above (right before left, level before up or down)
    return [b for cost, b in sorted(inside, key=lambda cb: round(cb[0] + _distance_to_box(x, y, cb[1])))]


def _leader(point: dict, box: tuple) -> tuple[float, float, float, float] | None:
    """A line from the circle's centre (drawn under the circle, so it shows from the edge) to the
    nearest point of a label set more than 4 px from the circle."""
    x, y = point["x"], point["y"]
    nx, ny = min(max(x, box[0]), box[2]), min(max(y, box[1]), box[3])
    return (x, y, nx, ny) if math.hypot(nx - x, ny - y) > point["r"] + 4 else None


def _fits(box, leader, point, points, boxes, leaders) -> bool:
    if any(_boxes_meet(box, other, 2) for other in boxes):
        return False
    if any(_distance_to_box(p["x"], p["y"], box) < p["r"] + 1 for p in points):
        return False
    if any(_segment_meets_box(other, box) for other in leaders):
        return False
    if leader is None:
        # a label without a leader line belongs to the circle nearest to it, so no other circle
        # may come nearly as near
        own = _distance_to_box(point["x"], point["y"], box) - point["r"]
        return not any(
            _distance_to_box(p["x"], p["y"], box) - p["r"] < own + 6 for p in points if p is not point
        )
    return not (
        any(_segment_meets_box(leader, other) for other in boxes)
        or any(_segments_cross(leader, other) for other in leaders)
        # nor across another circle, unless that one holds this circle's centre
        or any(
            _segment_meets_circle(leader, p["x"], p["y"], p["r"])
            for p in points
            if p is not point and math.hypot(p["x"] - point["x"], p["y"] - point["y"]) >= p["r"]
        )
    )


def _distance_to_box(x: float, y: float, box: tuple) -> float:
    return math.hypot(min(max(x, box[0]), box[2]) - x, min(max(y, box[1]), box[3]) - y)


def _boxes_meet(a: tuple, b: tuple, margin: float = 0.0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _segment_meets_box(segment: tuple, box: tuple) -> bool:
    """Whether a segment passes through a box's inside (Liang-Barsky clipping)."""
    x1, y1, x2, y2 = segment
    low, high = 0.0, 1.0
    for p, q in (
        (x1 - x2, x1 - box[0]),
        (x2 - x1, box[2] - x1),
        (y1 - y2, y1 - box[1]),
        (y2 - y1, box[3] - y1),
    ):
        if p == 0:
            if q <= 0:
                return False
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
    return high - low > 1e-6


def _segment_meets_circle(segment: tuple, cx: float, cy: float, r: float) -> bool:
    x1, y1, x2, y2 = segment
    length2 = (x2 - x1) ** 2 + (y2 - y1) ** 2 or 1e-9
    t = min(1.0, max(0.0, ((cx - x1) * (x2 - x1) + (cy - y1) * (y2 - y1)) / length2))
    return math.hypot(x1 + t * (x2 - x1) - cx, y1 + t * (y2 - y1) - cy) < r


def _segments_cross(a: tuple, b: tuple) -> bool:
    def side(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    p1, p2, q1, q2 = a[:2], a[2:], b[:2], b[2:]
    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def region_chart(regions: list[dict]) -> Chart:
    return Chart(
        "regions",
        "Regional footprint",
        _svg(
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
        ),
    )


def map_chart(regions: list[dict]) -> Chart:
    """The regions in use on a world map: circle area is logical size, every circle is named."""
    world = world_atlas()
    land = topojson_points(world, world["objects"][LAND])
    projection = EqualEarth.fit(land, MAP_WIDTH, MAP_PAD)
    used = [r for r in regions if r["project_count"]]
    located = [r for r in used if r["geo_latitude"] is not None and r["geo_longitude"] is not None]
    largest = max((r["total_logical_size_bytes"] or 0 for r in located), default=0) / GIB or 1
    points = []
    for r in sorted(located, key=lambda r: (-r["project_count"], r["region_id"])):
        gib = (r["total_logical_size_bytes"] or 0) / GIB
        area = MAP_AREA[0] + (MAP_AREA[1] - MAP_AREA[0]) * gib / largest  # as Vega's size scale below
        x, y = projection(r["geo_longitude"], r["geo_latitude"])
        points.append(
            {
                "region_id": r["region_id"],
                "region_name": r["region_name"],
                "projects": r["project_count"],
                "gib": gib,
                "provider": PROVIDERS.get(r["cloud_provider"], r["cloud_provider"]),
                "lon": r["geo_longitude"],
                "lat": r["geo_latitude"],
                "x": x,
                "y": y,
                "r": area**0.5 / 2,  # a Vega symbol's size is the area of its bounding square
                "label": f"{r['region_id']} ({r['project_count']})",
            }
        )
    labels, unplaced = place_labels(points, projection.width, projection.height)
    notes = []
    if unplaced:
        notes.append("Not labelled for lack of room: " + ", ".join(p["label"] for p in unplaced) + ".")
    if len(located) < len(used):
        unknown = [f"{r['region_id']} ({r['project_count']})" for r in used if r not in located]
        notes.append("Not on the map (Neon gives no coordinates): " + ", ".join(unknown) + ".")
    notes.append("Land: Natural Earth 1:110m (public domain).")
    pixels = {"type": "quantitative", "scale": None}
    svg = _svg(
        {
            "title": {"text": "Where the projects run", "subtitle": LABEL_KEY},
            "width": projection.width,
            "height": projection.height,
            "projection": {
                "type": "equalEarth",
                "scale": projection.scale,
                "translate": projection.translate,
            },
            "layer": [
                {
                    "name": "land",
                    "data": {"values": world, "format": {"type": "topojson", "feature": LAND}},
                    "mark": {"type": "geoshape", "fill": "#e4e4e4", "stroke": "#fff", "strokeWidth": 0.5},
                },
                {
                    "name": "leaders",
                    "data": {"values": [label for label in labels if label["leader"]]},
                    "mark": {"type": "rule", "color": "#777", "strokeWidth": 0.8},
                    "encoding": {
                        "x": {"field": "x1", **pixels},
                        "y": {"field": "y1", **pixels},
                        "x2": {"field": "x2"},
                        "y2": {"field": "y2"},
                    },
                },
                {
                    "name": "regions",
                    "data": {"values": sorted(points, key=lambda p: -p["r"])},  # small ones on top
                    "mark": {"type": "circle", "opacity": 0.75, "stroke": "#fff", "strokeWidth": 0.8},
                    "encoding": {
                        "longitude": {"field": "lon", "type": "quantitative"},
                        "latitude": {"field": "lat", "type": "quantitative"},
                        "size": {
                            "field": "gib",
                            "type": "quantitative",
                            "title": "Logical size (GiB)",
                            "scale": {
                                "domain": [0, largest],
                                "range": list(MAP_AREA),
                                "zero": True,
                                "nice": False,
                            },
                        },
                        "color": {"field": "provider", "type": "nominal", "title": "Cloud"},
                        "tooltip": [
                            {"field": "region_name", "title": "Region"},
                            {"field": "projects", "title": "Projects"},
                            {"field": "gib", "title": "Logical size (GiB)", "format": ".2f"},
                        ],
                    },
                },
                {
                    "name": "labels",
                    "data": {"values": labels},
                    "mark": {
                        "type": "text",
                        "align": "left",
                        "baseline": "middle",
                        "font": MONO,
                        "fontSize": LABEL_SIZE,
                        "color": "#222",
                    },
                    "encoding": {
                        "x": {"field": "left", **pixels},
                        "y": {"field": "middle", **pixels},
                        "text": {"field": "text"},
                    },
                },
            ],
        }
    )
    return Chart("regions-map", "Regional footprint on the map", svg, " ".join(notes))


def age_chart(branches: list[dict]) -> Chart:
    return Chart(
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


def stale_chart(stale: list[dict]) -> Chart:
    # "#rank" ties each bar to its row in the clean-up table, and keeps same-named branches apart
    bars = [
        {
            "branch": f"#{r['cleanup_rank']} " + shorten(f"{r['project_name']} / {r['branch_name']}"),
            "gib": (r["logical_size_bytes"] or 0) / GIB,
        }
        for r in stale[:STALE_BARS]
    ]
    return Chart(
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


def project_chart(projects: list[dict]) -> Chart:
    top = projects[:PROJECT_BARS]
    labels = distinct_labels([p["project_name"] for p in top], [p["project_id"] for p in top])
    top = [{**p, "project": label} for p, label in zip(top, labels, strict=True)]
    return Chart(
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


# What it costs (monthly_bill, project_costs, branch_costs) and compute hygiene (compute_hygiene)
# --------------------------------------------------------------------------------------------------
# Every figure is a mart's: this module lays them out and formats them, and adds up no more than the
# columns it shows (a table's total).

COST_BARS = 15  # branches charted; the table below the chart lists more
COST_ROWS = 25  # branches in the cost table
PROJECT_COST_ROWS = 15  # projects in a period's table (the chart shows as many)
HYGIENE_ROWS = 30  # computes in the hygiene list
# project_costs' cost of each kind -> its name in the report, in the order the bars stack.
COST_KINDS = {
    "compute_cost_usd": "Compute",
    "storage_cost_usd": "Storage",
    "transfer_cost_usd": "Transfer",
    "extra_branches_cost_usd": "Extra branches",
}
# included_per of monthly_bill -> how the allowance is counted, in words.
INCLUDED_PER = {
    "organization-month": "a month for the organization",
    "project-hour": "per project at any hour",
}
# A flag of compute_hygiene -> the finding's name in the report, and what it means.
FINDINGS = {
    "never_suspends": (
        "never suspends",
        "its suspend timeout is -1: it never scales to zero, and bills at least its minimum size for as "
        "long as it runs",
    ),
    "has_oversized_minimum": (
        "minimum above 0.25 CU",
        "while it runs it never scales below its minimum size; 0.25 CU is the smallest",
    ),
    "is_active_on_stale_branch": (
        "runs on a stale branch",
        "it was running when last read, on a stale branch: one nobody used for two weeks or more "
        "(see the clean-up list)",
    ),
    "is_idle_read_replica": (
        "idle read replica",
        "a read replica nobody used for a week or more (the dbt var idle_replica_after_days): likely "
        "forgotten",
    ),
}


def window_words(start: Any, end: Any) -> str:
    """The cost window in words: "Oct 31 to Nov 29"."""
    return f"{start:%b} {start.day} to {end:%b} {end.day}"


def hours(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def amount(value: float | None) -> str:
    """A quantity: two decimals from 1 up, three significant digits below (0.0312 GB-months)."""
    if value is None:
        return "–"
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def usd(value: float | None, signed: bool = False) -> str:
    """Dollars and cents; a cost too small for a cent still shows that it is not nothing."""
    if value is None:
        return "no rate"
    sign = (
        ("+" if value > 0 else "\u2212" if value < 0 else "") if signed else ("\u2212" if value < 0 else "")
    )
    if 0 < abs(value) < 0.005:
        return f"{sign}<$0.01"
    return f"{sign}${abs(value):,.2f}"


def rate_words(rate: float | None, unit: str | None) -> str:
    return "no rate" if rate is None else f"${rate:g} / {unit}"


def share(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def period_words(start: Any) -> str:
    """A billing period by its start: "November 2026" (Neon's periods start on the 1st)."""
    return f"{start:%B %Y}" if start.day == 1 else f"the period from {start:%b} {start.day}, {start.year}"


def until_words(moment: Any) -> str:
    """Where the warehouse's figures of a period stop: "Dec 5, 00:00 UTC"."""
    return f"{moment:%b} {moment.day}, {moment:%H:%M} UTC"


def plan_words(plan: str | None) -> str:
    return f"{plan.capitalize()} plan" if plan else "unknown plan"


def suspend_words(seconds: int | None) -> str:
    """A compute's suspend timeout as people say it."""
    if seconds is None:
        return "–"
    if seconds < 0:
        return "never"
    if seconds == 0:
        return "after 5 min (default)"
    if seconds % 3600 == 0:
        return f"after {seconds // 3600} h"
    if seconds % 60 == 0:
        return f"after {seconds // 60} min"
    return f"after {seconds} s"


def usd_total(values: list[float | None]) -> str:
    """The total of figures shown; where some have no rate, the priced part and a word for the rest
    (never a guess at it)."""
    known = [v for v in values if v is not None]
    if len(known) == len(values):
        return usd(sum(known))
    return f"{usd(sum(known))} + unpriced" if known else "no rate"


class Period(NamedTuple):
    """One billing period of one organization: its monthly_bill rows (one per metric)."""

    start: Any
    lines: list[dict]

    @property
    def first(self) -> dict:
        return self.lines[0]

    @property
    def is_complete(self) -> bool:
        return all(line["is_period_complete"] for line in self.lines)

    @property
    def is_running(self) -> bool:
        return self.first["billing_period_end"] is None

    @property
    def cost(self) -> str:
        return usd_total([line["cost_usd"] for line in self.lines])

    @property
    def projected_cost(self) -> str:
        return usd_total([line["projected_cost_usd"] for line in self.lines])

    @property
    def unpriced(self) -> list[str]:
        """The metrics billable in the period without a rate."""
        return [metric_words(line["metric_name"]) for line in self.lines if line["cost_usd"] is None]

    @property
    def reported_until(self) -> Any:
        return max(line["reported_until"] for line in self.lines)

    def name(self) -> str:
        return period_words(self.start)


def periods_of(bill: list[dict]) -> dict[tuple, list[Period]]:
    """monthly_bill's rows per organization ((org_id, org_name)), each as its periods, oldest first."""
    grouped: dict[tuple, dict[Any, list[dict]]] = {}
    for line in bill:
        org = (line["org_id"], line["org_name"] or line["org_id"])
        grouped.setdefault(org, {}).setdefault(line["billing_period_start"], []).append(line)
    order = {name: i for i, name in enumerate(METRICS)}
    return {
        org: [
            Period(
                start,
                sorted(
                    lines, key=lambda line: (order.get(line["metric_name"], len(order)), line["metric_name"])
                ),
            )
            for start, lines in sorted(periods.items())
        ]
        for org, periods in grouped.items()
    }


def bill_table(period: Period) -> str:
    """A period's bill by metric: usage in the unit Neon bills, what the plan included, what is
    billable, the rate and the cost; for the running period, where it is heading."""
    running = not period.is_complete
    head = [
        "metric",
        "quantity",
        "unit",
        "included (free)",
        "billable",
        "rate",
        "cost so far" if running else "cost",
    ]
    if running:
        head += ["projected quantity", "projected cost"]
    body = []
    for line in period.lines:
        cells = [
            metric_words(line["metric_name"]),
            amount(line["quantity"]),
            line["unit"],
            amount(line["allowance_quantity"]),
            amount(line["billable_quantity"]),
            rate_words(line["rate_usd"], line["unit"]),
            usd(line["cost_usd"]),
        ]
        if running:
            cells += [amount(line["projected_quantity"]), usd(line["projected_cost_usd"])]
        body.append(_cells(tuple(cells)))
    total = ["Total", "", "", "", "", "", period.cost] + (["", period.projected_cost] if running else [])
    return (
        f'<table class="bill" data-period="{period.start.isoformat()}">'
        "<thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "\n".join(body)
        + "</tbody><tfoot>"
        + "<tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in total)
        + "</tr>"
        + "</tfoot></table>"
    )


def period_heading(period: Period) -> str:
    plan = plan_words(period.first["billing_plan"])
    if period.is_complete:
        return f"{period.name()}, complete ({plan})"
    if period.is_running:
        return f"{period.name()} so far, to {until_words(period.reported_until)} ({plan})"
    return f"{period.name()}, partly loaded ({plan})"


def allowance_words(period: Period) -> list[str]:
    """What the plan included in the period, and how much of it was used."""
    words = []
    for line in period.lines:
        if line["included_quantity"] is None:
            continue
        unit = UNITS.get(line["unit"], line["unit"])
        per = INCLUDED_PER.get(line["included_per"], f"per {line['included_per']}")
        if line["included_per"] == "organization-month":
            words.append(
                f"{metric_words(line['metric_name'])}: {amount(line['allowance_quantity'])} {unit} used of "
                f"the {line['included_quantity']:g} {unit} included {per}"
                + (
                    f"; {amount(line['billable_quantity'])} {unit} billable."
                    if line["billable_quantity"]
                    else "."
                )
            )
        else:
            words.append(
                f"{metric_words(line['metric_name'])}: {amount(line['quantity'])} {unit} of child branches, "
                f"{amount(line['allowance_quantity'])} of them free ({line['included_quantity']:g} child "
                f"branches included {per})"
                + (f"; {amount(line['billable_quantity'])} billable." if line["billable_quantity"] else ".")
            )
    return words


def rates_words(periods: list[Period]) -> str:
    """Where the rates of the periods shown come from: the rate card's date, or your prices."""
    sources = []
    for period in periods:
        for line in period.lines:
            if line["rate_source"] == "rate card":
                found = f"Neon's rate card of {line['rate_effective_from']:%Y-%m-%d} for the {plan_words(line['billing_plan'])}"
            elif line["rate_source"]:
                found = "your prices (the dbt var neon_prices)"
            else:
                continue  # said under "Unpriced"
            if found not in sources:
                sources.append(found)
    return "Rates: " + "; ".join(sources) + "." if sources else ""


def project_total(costs: dict) -> str:
    """A project's cost in a period: project_costs' total, or its priced kinds where some usage
    has no rate."""
    if costs["cost_usd"] is not None:
        return usd(costs["cost_usd"])
    return usd_total([costs[column] for column in COST_KINDS])


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
        _svg(
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


def project_table(
    period: Period, costs: list[dict], previous: Period | None, running: Period | None, running_costs: dict
) -> str:
    """The projects of a period, most expensive first: cost by kind, share, month over month (the
    previous period named, and said to be partial when it is), and (beside a complete period) the
    running period so far."""
    before = "previous period" if previous is None else f"{previous.start:%b %Y}"
    if previous is not None and not previous.is_complete:
        before += " (partial)"
    head = ["project", "region", *COST_KINDS.values(), "total", "share", before, "change"]
    if running is not None:
        head.append(f"{running.start:%b %Y} so far")
    rows = []
    for r in costs[:PROJECT_COST_ROWS]:
        name = r["project_name"] or f"{r['project_id']} (deleted)"
        cells = [
            name,
            r["region_id"] or "–",
            *(usd(r[column]) for column in COST_KINDS),
            project_total(r),
            share(r["share_of_org_cost"]),
            "–" if r["previous_period_cost_usd"] is None else usd(r["previous_period_cost_usd"]),
            "–" if r["cost_change_usd"] is None else usd(r["cost_change_usd"], signed=True),
        ]
        if running is not None:
            so_far = running_costs.get(r["project_id"])
            cells.append("–" if so_far is None else project_total(so_far))
        rows.append(_cells(tuple(cells)))
    more = len(costs) - PROJECT_COST_ROWS
    return (
        f'<table class="project-costs" data-period="{period.start.isoformat()}"><thead><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "\n".join(rows)
        + "</tbody></table>"
        + (f'<p class="note">And {more} more projects in marts.project_costs.</p>' if more > 0 else "")
    )


def organization_costs(org: tuple, periods: list[Period], project_costs: list[dict]) -> str:
    """One organization's bill: the last complete period, the running one, and their projects."""
    org_id, org_name = org
    complete = [p for p in periods if p.is_complete]
    last = complete[-1] if complete else None
    running = periods[-1] if not periods[-1].is_complete and periods[-1].is_running else None
    if last is None and running is None:
        running = periods[-1]  # neither complete nor running: the latest, partly loaded
    by_period: dict[Any, list[dict]] = {}
    for r in project_costs:
        if r["org_id"] == org_id:
            by_period.setdefault(r["billing_period_start"], []).append(r)
    headline = last or running
    drivers = by_period.get(headline.start, [])
    glance, notes = [], []
    if last is not None:
        glance.append(f"<b>{html.escape(last.name())}</b>, complete: <b>{html.escape(last.cost)}</b>")
    else:
        partial = [p.name() for p in periods if not p.is_complete and not p.is_running]
        glance.append("<b>No billing period is complete in the warehouse yet</b>: the running one is shown")
        notes.append(
            "A period is complete once Neon has closed it and the warehouse holds every day of it. "
            "Neon's daily history reaches back 60 days, so the period a first run starts in is only "
            "partly loaded"
            + (f" ({', '.join(partial)}: closed by Neon, not held whole)" if partial else "")
            + "; the next period is complete once it ends."
        )
    if running is not None:
        if running.is_running:
            glance.append(
                f"<b>{html.escape(running.name())}</b> so far, to {html.escape(until_words(running.reported_until))}: "
                f"<b>{html.escape(running.cost)}</b>, heading for <b>{html.escape(running.projected_cost)}</b> by the period's end"
            )
        else:
            glance.append(
                f"<b>{html.escape(running.name())}</b>, partly loaded: <b>{html.escape(running.cost)}</b>"
            )
    if drivers:
        top = drivers[0]
        glance.append(
            f"Top project of {html.escape(headline.name())}{'' if last else ' so far'}: "
            f"<b>{html.escape(top['project_name'] or top['project_id'])}</b>, {html.escape(project_total(top))}"
            + (
                ""
                if top["share_of_org_cost"] is None
                else f" ({share(top['share_of_org_cost'])} of the bill)"
            )
        )
    previous = periods[periods.index(headline) - 1] if periods.index(headline) > 0 else None
    shown = [p for p in (last, running) if p is not None]
    parts = [
        f'<div class="org-costs" data-org="{html.escape(org_id or "")}">',
        f"<h3>{html.escape(org_name or 'Personal account')}</h3>",
        '<ul class="glance">' + "".join(f"<li>{item}.</li>" for item in glance) + "</ul>",
        *(f'<p class="note">{html.escape(note)}</p>' for note in notes),
    ]
    for period in shown:
        parts.append(f"<h4>{html.escape(period_heading(period))}: by metric</h4>")
        parts.append(bill_table(period))
        allowances = allowance_words(period)
        if allowances:
            parts.append(
                f'<ul class="note allowances" data-period="{period.start.isoformat()}">'
                + "".join(f"<li>{html.escape(words)}</li>" for words in allowances)
                + "</ul>"
            )
    unpriced = sorted({metric for period in shown for metric in period.unpriced})
    if unpriced:
        parts.append(
            f'<p class="note">Unpriced: {html.escape(", ".join(unpriced))} '
            f"{'has' if len(unpriced) == 1 else 'have'} no rate on this plan in "
            "Neon's rate card (seed neon_rate_card); set your price in the dbt var neon_prices to count "
            "it. Totals say “+ unpriced” where it is left out.</p>"
        )
    rates = rates_words(shown)
    if rates:
        parts.append(f'<p class="note">{html.escape(rates)}</p>')
    if drivers:
        title = f"Which projects drove the bill: {headline.name()}" + ("" if last else " so far")
        chart = project_cost_chart(f"project-costs-{org_id}", title, drivers[:PROJECT_COST_ROWS])
        parts.append(_figure(chart))
        running_costs = (
            {r["project_id"]: r for r in by_period.get(running.start, [])} if (running and last) else {}
        )
        parts.append(project_table(headline, drivers, previous, running if last else None, running_costs))
    parts.append("</div>")
    return "\n".join(parts)


def branch_cost_chart(costs: list[dict]) -> Chart:
    """The branches that cost the most over the cost window (`costs` comes in that order): their
    estimated cost, CU-hours and storage in GB-months."""
    top = [r for r in costs if r["cu_hours_last_30_days"] is not None][:COST_BARS]
    labels = distinct_labels(
        [f"{r['project_name']} / {r['branch_name']}" for r in top], [r["branch_id"] for r in top]
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
        _svg(
            {
                "title": f"The {len(top)} branches that cost the most, "
                + window_words(first["window_start_date"], first["window_end_date"]),
                "data": {"values": values},
                "mark": "bar",
                "encoding": {
                    "y": {
                        "field": "branch",
                        "type": "nominal",
                        "sort": labels,
                        "title": None,
                        "axis": {"labelLimit": 0},
                    },
                    "x": {"field": "value", "type": "quantitative", "title": None},
                    "column": {
                        "field": "panel",
                        "type": "nominal",
                        "title": None,
                        "sort": list(panels),
                        "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
                    },
                },
                "resolve": {"scale": {"x": "independent"}},
                "width": 170,
            }
        ),
    )


def _figure(chart: Chart) -> str:
    return f'<figure class="chart" data-chart="{chart.key}">{chart.svg}</figure>'


def _cells(values: tuple) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>"


def branch_costs_part(costs: list[dict]) -> str:
    """The branches that cost the most over the last 30 complete days, with their owner."""
    if not costs:
        return ""
    measured = [r for r in costs if r["cu_hours_last_30_days"] is not None]
    window = window_words(costs[0]["window_start_date"], costs[0]["window_end_date"])
    note = (
        f"{len(measured)} of {len(costs)} branches have branch consumption for the 30 complete days "
        f"{window} (UTC); plans without it (free, Business) have none, and days before the account's "
        "branch history began are not in it. Estimated costs are compute, storage and transfer at the "
        "rates of each day's plan, before the organization's allowances (its free transfer is shared "
        "by its projects: see the bill above). Owner: who created the branch, as Neon records it."
    )
    rows = "\n".join(
        _cells(
            (
                r["project_name"],
                r["branch_name"],
                r["created_by"] or "–",
                r["consumption_day_count"],
                hours(r["cu_hours_last_30_days"]),
                amount(r["storage_gb_months_last_30_days"]),
                usd(r["estimated_cost_last_30_days"]),
            )
        )
        for r in measured[:COST_ROWS]
    )
    more = len(measured) - COST_ROWS
    return (
        f"<h3>Branches that cost the most, {html.escape(window)}</h3>"
        + (_figure(branch_cost_chart(costs)) if measured else "")
        + f'<p class="note">{html.escape(note)}</p>'
        '<table class="costs"><thead><tr><th>project</th><th>branch</th><th>owner</th><th>days measured</th>'
        "<th>CU-hours</th><th>storage (GB-months)</th><th>estimated cost</th></tr></thead><tbody>"
        + (rows or '<tr><td colspan="7">No branch consumption was loaded.</td></tr>')
        + "</tbody></table>"
        + (f'<p class="note">And {more} more in marts.branch_costs.</p>' if more > 0 else "")
    )


def cost_section(bill: list[dict], project_costs: list[dict], branch_costs: list[dict]) -> str:
    """What it costs: each organization's bill (last complete period, running period, projects),
    then the branches that cost the most."""
    orgs = periods_of(bill)
    body = [organization_costs(org, periods, project_costs) for org, periods in orgs.items()]
    if not body:
        body.append(
            "<p>No consumption history was loaded, so there is no bill to show: Neon serves it to paid "
            "plans (Launch, Scale, Agent, Enterprise) only.</p>"
        )
    return (
        '<section data-section="costs"><h2>What it costs</h2>'
        '<p class="note">Neon\'s usage bill as its "Usage and cost calculations" page computes it, from '
        "the consumption history (<code>marts.monthly_bill</code>, per project "
        "<code>marts.project_costs</code>): before Neon's minimum monthly fee, taxes, credits and "
        "discounts. Quantities are in the units Neon bills (decimal GB, a 744-hour month).</p>"
        + "\n".join(body)
        + branch_costs_part(branch_costs)
        + "</section>"
    )


def hygiene_section(hygiene: list[dict]) -> str:
    """The compute hygiene list: computes with findings, and what each finding means."""
    flagged = [r for r in hygiene if r["flag_count"]]
    counts = ", ".join(
        f"{sum(1 for r in flagged if r[flag])} {words}" for flag, (words, _) in FINDINGS.items()
    )
    legend = "".join(
        f"<li><b>{html.escape(words)}</b>: {html.escape(meaning)}</li>"
        for words, meaning in FINDINGS.values()
    )
    rows = "\n".join(
        _cells(
            (
                f"{r['project_name']} / {r['branch_name']}",
                r["endpoint_id"],
                ", ".join(words for flag, (words, _) in FINDINGS.items() if r[flag]),
                r["compute_size"],
                suspend_words(r["suspend_timeout_seconds"]),
                r["days_since_active"],
                "shared"
                if r["cu_hours_last_30_days"] is None and r["branch_cu_hours_last_30_days"] is not None
                else hours(r["cu_hours_last_30_days"]),
            )
        )
        for r in flagged[:HYGIENE_ROWS]
    )
    more = len(flagged) - HYGIENE_ROWS
    return (
        "<section><h2>Compute hygiene</h2>"
        f'<p class="note">{len(flagged)} of {len(hygiene)} computes have findings: {html.escape(counts)}.</p>'
        f'<ul class="note">{legend}</ul>'
        '<table class="hygiene"><thead><tr><th>project / branch</th><th>compute</th><th>findings</th>'
        "<th>size</th><th>suspends</th><th>idle (days)</th><th>CU-hours, 30 days</th></tr></thead><tbody>"
        + (rows or '<tr><td colspan="7">No findings.</td></tr>')
        + "</tbody></table>"
        + "<p class=\"note\">CU-hours are those of the compute's branch where they are the compute's "
        "alone (its only compute, or the only one that ran); \u201cshared\u201d where several computes "
        "of the branch ran, \u2013 where no branch consumption is loaded."
        + (f" And {more} more in marts.compute_hygiene." if more > 0 else "")
        + "</p></section>"
    )


# Who can reach the estate
# --------------------------------------------------------------------------------------------------
# Counts and flags per organization, from the access review's marts, in one query: every
# organization the key sees (with projects or without), and the personal account's projects (no
# organization). What the key could not read comes as flags (`organizations`, and a NULL count of
# `project_security`), never parsed from words. Never an address: no column that holds one
# (`principal`, `created_by`) is read.

ACCESS_BY_ORG = """
    with

    grants as (

        select
            org_id,
            count(case when principal_kind = 'member' and is_active then 1 end) as members,
            count(case when principal_kind = 'member' and is_active and member_role = 'admin' then 1 end)
                as admins,
            count(case when is_flagged_without_mfa then 1 end) as without_mfa,
            count(case when principal_kind = 'api_key' then 1 end) as api_keys,
            count(case when is_flagged_unused_key then 1 end) as unused_keys,
            count(case when principal_kind = 'project_share' and is_active then 1 end) as shares,
            count(case when is_flagged_outside_share then 1 end) as outside_shares,
            count(case when is_flagged_excess_admin then 1 end) as excess_admins
        from marts.access_review
        group by org_id

    ),

    projects as (

        select
            org_id,
            max(org_name) as org_name,
            count(*) as projects,
            count(case when is_reachable_from_anywhere then 1 end) as reachable,
            count(case when has_ip_allow_list then 1 end) as allow_list,
            count(case when is_vpc_only then 1 end) as vpc_only,
            count(case when active_share_count is null then 1 end) as unknown_shares,
            count(case when vpc_restriction_count is null then 1 end) as unknown_vpc_restrictions
        from marts.project_security
        group by org_id

    ),

    orgs as (

        select org_id from marts.organizations
        union
        select org_id from grants
        union
        select org_id from projects

    )

    select
        orgs.org_id,
        coalesce(organizations.org_name, projects.org_name) as org_name,
        organizations.are_members_visible,
        organizations.are_api_keys_visible,
        coalesce(projects.unknown_shares, 0) = 0 as are_shares_visible,
        organizations.not_visible,
        coalesce(projects.unknown_shares, 0) as unknown_shares,
        coalesce(projects.unknown_vpc_restrictions, 0) as unknown_vpc_restrictions,
        coalesce(grants.members, 0) as members,
        coalesce(grants.admins, 0) as admins,
        coalesce(grants.without_mfa, 0) as without_mfa,
        coalesce(grants.api_keys, 0) as api_keys,
        coalesce(grants.unused_keys, 0) as unused_keys,
        coalesce(grants.shares, 0) as shares,
        coalesce(grants.outside_shares, 0) as outside_shares,
        coalesce(grants.excess_admins, 0) as excess_admins,
        coalesce(projects.projects, 0) as projects,
        coalesce(projects.reachable, 0) as reachable,
        coalesce(projects.allow_list, 0) as allow_list,
        coalesce(projects.vpc_only, 0) as vpc_only
    from orgs
    left join marts.organizations as organizations on orgs.org_id = organizations.org_id
    left join grants on orgs.org_id is not distinct from grants.org_id
    left join projects on orgs.org_id is not distinct from projects.org_id
    order by orgs.org_id is null, coalesce(organizations.org_name, projects.org_name, orgs.org_id)
"""
ACCESS_COLUMNS = (
    "organization",
    "active members",
    "admins",
    "without MFA",
    "API keys",
    "unused keys",
    "active shares",
    "outside the org",
    "projects",
    "reachable from anywhere",
    "IP allow list",
    "VPC only",
)
# The counts of the table, and the listings each needs the key to have read (a flag that is false
# makes the count unknown; NULL, for the personal account, has no listing to miss).
ACCESS_COUNTS = (
    ("members", ("are_members_visible",)),
    ("admins", ("are_members_visible",)),
    ("without_mfa", ("are_members_visible",)),
    ("api_keys", ("are_api_keys_visible",)),
    ("unused_keys", ("are_api_keys_visible",)),
    ("shares", ("are_shares_visible",)),
    ("outside_shares", ("are_members_visible", "are_shares_visible")),
)


def _projects(n: int) -> str:
    return f"{n:,} project{'' if n == 1 else 's'}"


def access_section(orgs: list[dict]) -> str:
    """The access review in counts: one row per organization (ACCESS_BY_ORG's), and what the key
    could not see."""
    body, notes = [], []
    for org in orgs:
        name = org["org_name"] or org["org_id"] or "Personal account"
        cells = [
            name,
            *(
                "not visible" if any(org[flag] is False for flag in flags) else f"{org[key]:,}"
                for key, flags in ACCESS_COUNTS
            ),
            *(f"{org[key]:,}" for key in ("projects", "reachable", "allow_list", "vpc_only")),
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        unseen = [org["not_visible"]] if org["not_visible"] else []
        if org["unknown_shares"]:
            unseen.append(f"project shares of {_projects(org['unknown_shares'])}")
        if org["unknown_vpc_restrictions"]:
            unseen.append(f"VPC restrictions of {_projects(org['unknown_vpc_restrictions'])}")
        if unseen:
            notes.append(f"{name}: {', '.join(unseen)}")
    totalled = ("without_mfa", "unused_keys", "outside_shares", "excess_admins", "reachable", "projects")
    total = {key: sum(org[key] for org in orgs) for key in totalled}
    summary = (
        f"{total['without_mfa']:,} active members without MFA, {total['unused_keys']:,} API keys "
        f"never used or long unused, {total['outside_shares']:,} active shares outside their "
        f"organization, {total['excess_admins']:,} admins of organizations with too many; "
        f"{total['reachable']:,} of {total['projects']:,} projects reachable from anywhere."
    )
    hidden = (
        "<p>Not visible to the API key (so counted as unknown, never as none): "
        + "; ".join(html.escape(n) for n in notes)
        + ".</p>"
        if notes
        else ""
    )
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ACCESS_COLUMNS)
    return (
        '<section data-section="access"><h2>Who can reach the estate</h2>'
        f"<p>Flagged for review: {html.escape(summary)} The list of grants, with each flag's "
        "reason, is <code>marts.access_review</code>; per organization, what the key could read, "
        "<code>marts.organizations</code>; per project, <code>marts.project_security</code>.</p>"
        f'<table class="access"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        f"{hidden}</section>"
    )


def simulated_banner(origin: str | None) -> str:
    """A warning above everything when the warehouse was loaded from the simulator."""
    if origin is None or not is_local(origin):
        return ""
    return (
        '<p class="simulated" data-banner="simulated"><b>Simulated data.</b> This warehouse was '
        f"loaded from {html.escape(origin)}, the Neon API simulator (<code>make demo</code>), not from "
        "Neon: every project, branch and figure below, costs included, is made up.</p>"
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
    daily = rows(f"""
        select consumption_date, metric_name, billing_unit, sum(quantity) as total
        from ({DAILY_CONSUMPTION}) as daily
        group by consumption_date, metric_name, billing_unit
        order by consumption_date""")

    charts = [
        region_chart(regions),
        map_chart(regions),
        age_chart(branches),
        stale_chart(stale),
        project_chart(projects),
    ]
    if daily:
        charts.append(consumption_chart(daily))
    costs_html = cost_section(
        rows("select * from marts.monthly_bill order by org_name, org_id, billing_period_start, metric_name"),
        rows(
            # most expensive first; a project with some usage unpriced, by its priced part
            "select * from marts.project_costs order by billing_period_start, coalesce(cost_usd, "
            "coalesce(compute_cost_usd, 0) + coalesce(storage_cost_usd, 0) + coalesce(transfer_cost_usd, 0) "
            "+ coalesce(extra_branches_cost_usd, 0)) desc, project_name, project_id"
        ),
        rows(
            "select * from marts.branch_costs order by estimated_cost_last_30_days desc nulls last, "
            "cu_hours_last_30_days desc nulls last, branch_id"
        ),
    )
    hygiene_html = hygiene_section(
        rows(
            "select * from marts.compute_hygiene "
            "order by flag_count desc, cu_hours_last_30_days desc nulls last, endpoint_id"
        )
    )
    access = access_section(rows(ACCESS_BY_ORG))

    reclaimable = sum(r["logical_size_bytes"] or 0 for r in stale)
    figures = "\n".join(
        f"<section><h2>{html.escape(chart.title)}</h2>"
        f'<figure class="chart" data-chart="{chart.key}">{chart.svg}'
        + (f"<figcaption>{html.escape(chart.caption)}</figcaption>" if chart.caption else "")
        + "</figure></section>"
        for chart in charts
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
        # The file's name only: the page is shared, its folder is someone's machine.
        warehouse=html.escape(target.path.name if isinstance(target, DuckDBTarget) else target.describe()),
        totals=html.escape(totals),
        figures=figures,
        stale_rows=stale_rows or '<tr><td colspan="7">No stale branches.</td></tr>',
        consumption_note="" if daily else "<p>No consumption history was loaded (plans without it).</p>",
        simulated=simulated_banner(direct.read_origin()),
        cost_section=costs_html,
        hygiene_section=hygiene_html,
        access=access,
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
  figcaption {{ color: #666; font-size: 0.85rem; max-width: 760px; }}
  table {{ border-collapse: collapse; font-size: 0.9rem; }}
  th, td {{ border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }}
  td:nth-child(n+4) {{ text-align: right; }}
  table.costs td:nth-child(4) {{ text-align: right; }}
  table.hygiene td:nth-child(3), table.hygiene td:nth-child(5) {{ text-align: left; }}
  table.hygiene td:nth-child(4) {{ white-space: nowrap; }}
  table.access td:nth-child(n+2) {{ text-align: right; }}
  .note {{ color: #666; font-size: 0.85rem; max-width: 900px; }}
  .simulated {{ background: #fff4ce; border: 1px solid #e0b400; border-radius: 4px; padding: 0.6rem 0.9rem; }}
  ul.glance {{ font-size: 1.05rem; max-width: 900px; padding-left: 1.2rem; }}
  ul.glance li {{ margin: 0.2rem 0; }}
  table.bill td, table.project-costs td {{ white-space: nowrap; }}
  h4 {{ margin: 1.2rem 0 0.4rem; }}
  table.bill td:nth-child(n+2), table.bill tfoot th {{ text-align: right; }}
  table.bill td:nth-child(3) {{ text-align: left; }}
  table.bill tfoot th:first-child {{ text-align: left; }}
  table.project-costs td:nth-child(n+3) {{ text-align: right; }}
  table.costs td:nth-child(3) {{ text-align: left; }}
</style>
</head>
<body>
<h1>Neon estate report</h1>
<p class="meta">Generated {generated} from {warehouse}. {totals}.</p>
{simulated}
{cost_section}
{figures}
{consumption_note}
{hygiene_section}
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
{access}
</body>
</html>
"""
