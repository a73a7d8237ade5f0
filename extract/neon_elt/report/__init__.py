"""`make report` (`neon-elt report`): one self-contained HTML page drawn from the marts.

- data.py reads the marts (every figure is a dbt mart's, tested and documented there);
- charts.py and geo.py make the charts, Vega-Lite rendered to inline SVG (no script, no network);
- words.py and sections.py word and arrange the figures;
- templates/report.html.j2 lays the page out; Jinja2 escapes every value it is given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from neon_api_source.helpers import is_local

from ..views import GIB
from . import charts, data, geo, sections
from .words import named

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("neon_elt.report", "templates"),
    autoescape=True,  # every name from the warehouse is text, never markup
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def warehouse_words(target: Any) -> str:
    """The warehouse as the page names it: a DuckDB file by its name only (the page travels; the
    folder it was built in says nothing to its readers and may say too much), PostgreSQL by its
    address without the password."""
    path = getattr(target, "path", None)
    return path.name if path is not None else target.describe()


def build(target: Any) -> str:
    marts = data.read(target)
    shown = [
        charts.region_chart(marts.regions),
        geo.map_chart(marts.regions),
        charts.age_chart(marts.branches),
        charts.stale_chart(marts.stale),
        charts.project_chart(marts.projects),
    ]
    if marts.daily:
        shown.append(charts.consumption_chart(marts.daily))
    stale = [
        [
            r["cleanup_rank"],
            named(r["project_name"]),
            named(r["branch_name"]),
            r["age_days"],
            r["days_since_activity"],
            f"{(r['logical_size_bytes'] or 0) / GIB:.2f}",
            r["endpoint_count"],
        ]
        for r in marts.stale
    ]
    estate = marts.estate[0]
    totals = (
        f"{estate['project_count']} projects, {estate['branch_count']} branches, {estate['stale_branch_count']} stale "
        f"({estate['stale_logical_size_bytes'] / GIB:.2f} GiB reclaimable), "
        f"{estate['regions_in_use_count']} of {estate['region_count']} regions in use"
    )
    return TEMPLATES.get_template("report.html.j2").render(
        generated=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        warehouse=warehouse_words(target),
        totals=totals,
        simulated=marts.origin if marts.origin is not None and is_local(marts.origin) else None,
        costs=sections.costs(
            marts.bill, marts.org_bills, marts.project_costs, marts.branch_costs, marts.unbilled
        ),
        charts=shown,
        has_consumption=bool(marts.daily),
        hygiene=sections.hygiene(marts.hygiene, estate),
        stale=stale,
        stale_words=sections.stale_words(estate),
        access=sections.access(marts.access, estate),
    )


def write(target: Any, output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".tmp")
    tmp.write_text(build(target), encoding="utf-8")
    tmp.replace(output)
    return output
