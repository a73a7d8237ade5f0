"""The map of the regions in use: land, a circle per region, and a label for every circle.

Land is Natural Earth's 1:110m countries, shipped with the report (map_data/, whose README says
where the file comes from), so the page needs no map service. The map is drawn by Vega's own Equal
Earth projection; positions are also projected here, with the same formulas, scale and translation,
because the labels are placed here: Vega-Lite has no label placement (Vega's `label` transform is
not exposed to it, and draws no leader lines), so that two labels never touch is this module's job.
"""

from __future__ import annotations

import json
import math
from importlib.resources import files
from typing import Any, NamedTuple

from ..views import GIB
from .charts import Chart, svg

PROVIDERS = {"aws": "AWS", "azure": "Azure"}
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
ATLAS = "map_data/countries-110m.json"  # package data of neon_elt.report
LAND = "countries"  # the TopoJSON object in it that the map draws


def world_atlas() -> dict:
    """The world as TopoJSON: one shape per country, so that borders show; no Antarctica (no region
    there, and a sixth of the height)."""
    return json.loads(files("neon_elt.report").joinpath(ATLAS).read_text(encoding="utf-8"))


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
    drawn = svg(
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
    return Chart("regions-map", "Regional footprint on the map", drawn, " ".join(notes))
