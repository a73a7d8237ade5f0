"""Reading `make report`'s page in tests: its charts, its tables' cells and the figures they show."""

from __future__ import annotations

import html
import re

EXPECTED_CHARTS = {
    "regions",
    "regions-map",
    "branch-ages",
    "stale-branches",
    "projects",
    "consumption",
    "branch-costs",
}


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("\u2212", "-"))
    except ValueError:
        return None


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
