"""What the report and the analysts' notebook both show: words for the marts' identifiers, the
units Neon bills in, who has no bill, and names made safe to show.

Both read the same marts; this module holds what they say about them, so the two never word a
metric or a unit differently."""

from __future__ import annotations

import re

GIB = 2**30
VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"  # a chart spec's $schema id; never fetched
# Consumption metrics in words, in the order charts and bills show them; a metric Neon adds later
# gets its name with spaces until it is named here.
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
# The organizations with no bill (marts.organizations.has_bill): no consumption history was loaded
# for them, which Neon serves to paid plans only. The report, the summary and the notebook name
# them beside the bills, so that none is left out unseen.
UNBILLED_ORGS = "select org_name from marts.organizations where not has_bill order by org_name, org_id"
PAID_PLANS_ONLY = "Neon serves it to paid plans (Launch, Scale, Agent, Business, Enterprise) only"
NO_BILL = f"No consumption history was loaded, so there is no bill to show: {PAID_PLANS_ONLY}."


def no_history(names: list[str]) -> str | None:
    """The line naming the organizations without a bill (UNBILLED_ORGS's names); None without any."""
    return f"No consumption history for {', '.join(names)}: {PAID_PLANS_ONLY}." if names else None


# A name Neon serves may hold anything: white space other than a space breaks a line or a label,
# other control characters stop the chart renderer (vl-convert panics), and bidirectional overrides
# and isolates turn the text after them around. Shown, they read as a space, a replacement
# character, and nothing.
BREAKS = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]")
CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
NAME_CHARS = 100  # a name longer than this loses its middle wherever it is shown
NO_NAME = "(no name)"


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters: the middle of a long text gives way, so that both ends stay."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def showable(text: str, limit: int = NAME_CHARS) -> str:
    """A text from the warehouse as it may be shown: printable, one line, at most `limit` characters."""
    text = BIDI_CONTROLS.sub("", CONTROLS.sub("\ufffd", BREAKS.sub(" ", text)))
    return shorten(text, limit)


def metric_words(metric_name: str) -> str:
    return METRICS.get(metric_name) or metric_name.replace("_", " ").capitalize()


def consumption_panel(metric_name: str, billing_unit: str | None) -> str:
    """The title of a metric's panel: the metric in words, and the unit Neon bills it in."""
    unit = UNITS.get(billing_unit or "", billing_unit)
    return f"{metric_words(metric_name)} ({unit})" if unit else metric_words(metric_name)
