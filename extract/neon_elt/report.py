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


def consumption_panel(metric_name: str, metric_unit: str | None) -> tuple[str, float]:
    """The title of a metric's panel, in words and the unit shown, and the divisor into that unit."""
    words = METRICS.get(metric_name) or metric_name.replace("_", " ").capitalize()
    unit, per = UNITS.get(metric_unit or "", (metric_unit, 1))
    return (f"{words} ({unit})" if unit else words), per


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
        panel, per = consumption_panel(row["metric_name"], row["metric_unit"])
        panels[panel] = (order.get(row["metric_name"], len(order)), panel)
        values.append({"date": row["consumption_date"], "panel": panel, "value": (row["total"] or 0) / per})
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


# Cost per branch and compute hygiene (branch_costs, compute_hygiene)
# --------------------------------------------------------------------------------------------------

COST_BARS = 15  # branches charted; the table below the chart lists more
COST_ROWS = 25  # branches in the cost table
HYGIENE_ROWS = 30  # computes in the hygiene list
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


def gib(value: float | None) -> str:
    return "–" if value is None else f"{value / GIB:,.2f}"


def money(value: float | None) -> str:
    return "not priced" if value is None else f"{value:,.2f}"


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


def branch_cost_chart(costs: list[dict]) -> Chart:
    """The branches that cost the most over the cost window (without prices, that used the most
    compute; `costs` comes in that order): CU-hours, storage in GiB-months, and the estimated cost
    when prices are set."""
    top = [r for r in costs if r["cu_hours_last_30_days"] is not None][:COST_BARS]
    labels = distinct_labels(
        [f"{r['project_name']} / {r['branch_name']}" for r in top], [r["branch_id"] for r in top]
    )
    priced = any(r["estimated_cost_last_30_days"] is not None for r in top)

    def measures(r: dict) -> dict[str, float | None]:
        shown = {
            "Compute (CU-hours)": r["cu_hours_last_30_days"],
            "Storage (GiB-months)": (r["storage_bytes_month_last_30_days"] or 0) / GIB,
        }
        if priced:
            shown["Estimated cost (your prices)"] = r["estimated_cost_last_30_days"]
        return shown

    panels = list(measures(top[0])) if top else []
    values = [
        {"branch": label, "panel": panel, "value": value}
        for r, label in zip(top, labels, strict=True)
        for panel, value in measures(r).items()
    ]
    first = top[0] if top else costs[0]
    return Chart(
        "branch-costs",
        "Cost per branch",
        _svg(
            {
                "title": f"The {len(top)} branches that "
                + ("cost the most, " if priced else "used the most compute, ")
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
                        "sort": panels,
                        "header": {"labelFontSize": 11, "labelFontWeight": "bold"},
                    },
                },
                "resolve": {"scale": {"x": "independent"}},
                "width": 200 if priced else 260,
            }
        ),
    )


def _figure(chart: Chart) -> str:
    return f'<figure class="chart" data-chart="{chart.key}">{chart.svg}</figure>'


def _cells(values: tuple) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in values) + "</tr>"


def cost_sections(costs: list[dict], hygiene: list[dict]) -> str:
    """Cost per branch (a chart, when branch consumption is loaded, and a table) and the compute
    hygiene list."""
    measured = [r for r in costs if r["cu_hours_last_30_days"] is not None]
    parts = []
    if costs:
        window = window_words(costs[0]["window_start_date"], costs[0]["window_end_date"])
        priced = any(r["estimated_cost_last_30_days"] is not None for r in costs)
        note = (
            f"{len(measured)} of {len(costs)} branches have branch consumption for the 30 complete "
            f"days {window} (UTC); plans without it (free, Business) have none, and days before the "
            "account's branch history began are not in it. "
            + (
                "Estimated costs are at your prices, before your plan's allowances."
                if priced
                else "Estimated costs need your prices: set them in the dbt var neon_prices (dbt_project.yml)."
            )
        )
        rows = "\n".join(
            _cells(
                (
                    r["project_name"],
                    r["branch_name"],
                    r["consumption_day_count"],
                    hours(r["cu_hours_last_30_days"]),
                    gib(r["storage_bytes_month_last_30_days"]),
                    gib(r["network_transfer_bytes_last_30_days"]),
                    money(r["estimated_cost_last_30_days"]),
                )
            )
            for r in measured[:COST_ROWS]
        )
        more = len(measured) - COST_ROWS
        parts.append(
            "<section><h2>Cost per branch, last 30 days</h2>"
            + (_figure(branch_cost_chart(costs)) if measured else "")
            + f'<p class="note">{html.escape(note)}</p>'
            '<table class="costs"><thead><tr><th>project</th><th>branch</th><th>days measured</th>'
            "<th>CU-hours</th><th>storage (GiB-months)</th><th>transfer (GiB)</th>"
            "<th>estimated cost</th></tr></thead><tbody>"
            + (rows or '<tr><td colspan="7">No branch consumption was loaded.</td></tr>')
            + "</tbody></table>"
            + (f'<p class="note">And {more} more in marts.branch_costs.</p>' if more > 0 else "")
            + "</section>"
        )
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
                f"{r['autoscaling_limit_min_cu']:g}–{r['autoscaling_limit_max_cu']:g} CU",
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
    parts.append(
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
    return "\n".join(parts)


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

    charts = [
        region_chart(regions),
        map_chart(regions),
        age_chart(branches),
        stale_chart(stale),
        project_chart(projects),
    ]
    if daily:
        charts.append(consumption_chart(daily))
    costs_html = cost_sections(
        rows(
            "select * from marts.branch_costs order by estimated_cost_last_30_days desc nulls last, "
            "cu_hours_last_30_days desc nulls last, branch_id"
        ),
        rows(
            "select * from marts.compute_hygiene "
            "order by flag_count desc, cu_hours_last_30_days desc nulls last, endpoint_id"
        ),
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
        warehouse=html.escape(target.describe()),
        totals=html.escape(totals),
        figures=figures,
        stale_rows=stale_rows or '<tr><td colspan="7">No stale branches.</td></tr>',
        consumption_note="" if daily else "<p>No consumption history was loaded (plans without it).</p>",
        cost_sections=costs_html,
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
  table.costs td:nth-child(3) {{ text-align: right; }}
  table.hygiene td:nth-child(3), table.hygiene td:nth-child(5) {{ text-align: left; }}
  table.hygiene td:nth-child(4) {{ white-space: nowrap; }}
  table.access td:nth-child(n+2) {{ text-align: right; }}
  .note {{ color: #666; font-size: 0.85rem; max-width: 900px; }}
</style>
</head>
<body>
<h1>Neon estate report</h1>
<p class="meta">Generated {generated} from {warehouse}. {totals}.</p>
{figures}
{consumption_note}
{cost_sections}
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
