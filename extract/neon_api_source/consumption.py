"""Consumption history as the consumption tables hold it: what a run reads (the days or hours
since the last ones loaded, of every organization; a hundred projects a request for branches),
and each page flattened to Arrow rows of one project (or branch), timeframe and metric.

The columns are the listing's (listings.CONSUMPTION_COLUMNS, one list): the Arrow schema, the
dlt hints and the row order of the flattening all come from it. Arrow rather than dicts: a large
account has about a million of these rows, and dlt writes Arrow straight to parquet instead of
normalizing row by row.
"""

from __future__ import annotations

import array
import base64
import functools
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta

import dlt
import pyarrow
import pyarrow.compute
from dlt.common.data_types import coerce_value, py_type_to_sc_type

from . import listings, settings
from .estate import Estate
from .helpers import NeonAPIError
from .reading import iso, pages, parse_ts

# dlt's row id, which the source writes itself (`row_ids`) rather than dlt's normalize.
ROW_ID_HINT = {"_dlt_id": {"data_type": "text", "nullable": False, "unique": True, "row_key": True}}
_ARROW_TYPES = {
    "text": pyarrow.string(),
    "bigint": pyarrow.int64(),
    "timestamp": pyarrow.timestamp("us", tz="UTC"),
}


def resource_args(listing: listings.Listing) -> dict:
    """`dlt.resource` arguments of a consumption table: the listing's, and the row id."""
    args = listing.resource_args()
    return {**args, "columns": {**args["columns"], **ROW_ID_HINT}}


def arrow_schema(listing: listings.Listing) -> pyarrow.Schema:
    """The Arrow schema of a consumption table's rows: the listing's columns, then `_dlt_id`."""
    fields = [
        pyarrow.field(name, _ARROW_TYPES[kind], nullable=name not in listing.required)
        for name, kind in listing.columns.items()
    ]
    return pyarrow.schema([*fields, pyarrow.field("_dlt_id", pyarrow.string(), nullable=False)])


def time_range(
    run_at: datetime, loaded_until: str | None, granularity: str, full_refresh: bool
) -> dict[str, str]:
    """`from`, `to` and `granularity` of a consumption request: complete UTC days (hours) only,
    as far back as Neon serves them (CONSUMPTION_HISTORY_DAYS, HOURLY_CONSUMPTION_HOURS) on the
    first run or with `full_refresh`, and from the last one loaded minus the look-back (Neon
    revises the latest) otherwise."""
    if granularity == "hourly":
        step = timedelta(hours=1)
        end = run_at.replace(minute=0, second=0)
        reach, lookback = settings.HOURLY_CONSUMPTION_HOURS, settings.HOURLY_CONSUMPTION_LOOKBACK_HOURS
    else:
        step = timedelta(days=1)
        end = run_at.replace(hour=0, minute=0, second=0)
        reach, lookback = settings.CONSUMPTION_HISTORY_DAYS, settings.CONSUMPTION_LOOKBACK_DAYS
    start = end - step * (reach - 1)  # a step short of Neon's reach: our clock may run ahead of Neon's
    if loaded_until and not full_refresh:
        start = max(start, parse_ts(loaded_until) - step * lookback)
    return {"from": iso(start), "to": iso(end), "granularity": granularity}


def read(
    estate: Estate, listing: listings.Listing, granularity: str, metrics, batch: int | None = None
) -> Iterator[pyarrow.Table]:
    """A consumption table's rows of every organization, from the timeframe after the last one
    loaded (the resource's state, restored from the warehouse) minus the look-back. With `batch`,
    the organization's projects are named, `batch` a request (the branch consumption). A 403, 404
    or 406 (a plan without it, a rejected range) is noted and the organization skipped."""
    loaded_until: dict[str, str] = dlt.current.resource_state().setdefault("loaded_until", {})
    hourly = granularity == "hourly"
    for org_id in _org_ids(estate, listing.noun):
        span = time_range(estate.run_at, loaded_until.get(org_id), granularity, estate.full_refresh)
        convert = functools.partial(to_table, listing, org_id, before=span["to"], drop_zero=hourly)
        latest = loaded_until.get(org_id, "")
        try:
            for params in _requests(estate, org_id, span, metrics, listing.page_limit, batch):
                for rows in pages(estate.client, listing, params, convert=convert):
                    if rows.num_rows:
                        latest = max(latest, iso(pyarrow.compute.max(rows["timeframe_start"]).as_py()))
                        estate.stats.count_rows(listing.table, rows.num_rows)
                        yield rows
        except NeonAPIError as exc:
            if exc.status not in (403, 404, 406):
                raise
            estate.stats.skipped_optional.append(f"{listing.noun} for {org_id}: {exc.status} {exc.detail}")
            continue
        if hourly:  # hours without rows were read too: the last one asked for is loaded
            latest = iso(parse_ts(span["to"]) - timedelta(hours=1))
        if latest:
            loaded_until[org_id] = latest


def _requests(
    estate: Estate, org_id: str, span: dict[str, str], metrics, limit: int | None, batch: int | None
) -> list[dict]:
    """The query of each request for one organization: one, or one per `batch` of its projects."""
    scope, wanted = {**span, "org_id": org_id}, {"metrics": ",".join(metrics), "limit": limit}
    if batch is None:
        return [{**scope, **wanted}]
    ids = sorted(p["id"] for p in estate.projects() if p.get("org_id") == org_id)
    return [
        {**scope, "project_ids": ",".join(ids[at : at + batch]), **wanted} for at in range(0, len(ids), batch)
    ]


def _org_ids(estate: Estate, what: str) -> list[str]:
    """The organizations whose consumption to read (an organization key's from its projects);
    none for a personal account, which is noted: consumption history is per organization."""
    org_ids = estate.org_ids()
    if not org_ids:
        estate.stats.skipped_optional.append(f"{what}: needs an organization (personal account)")
    if estate.consumption_orgs is not None:
        org_ids = [org_id for org_id in org_ids if org_id in estate.consumption_orgs]
    return org_ids


def to_table(
    listing: listings.Listing,
    org_id: str,
    page: list[dict],
    before: str | None = None,
    drop_zero: bool = False,
) -> pyarrow.Table:
    """One page of consumption, flattened to one row per project (or branch, as the listing's
    columns have it), timeframe and metric; with `before`, only timeframes that start before it;
    with `drop_zero`, only values other than 0."""
    schema = arrow_schema(listing)
    names = list(listing.columns)
    metric_at, value_at = names.index("metric_name"), names.index("value")
    ids = [name for name in ("project_id", "branch_id") if name in listing.columns]
    until = parse_ts(before) if before else None
    columns: list[list] = [[] for _ in names]
    for item in page:
        item_values = {"org_id": org_id, **{name: item[name] for name in ids}}
        for period in item.get("periods") or []:
            period_values = {
                **item_values,
                "period_id": period.get("period_id"),
                "period_plan": period.get("period_plan"),
                "period_start": _ts_or_none(period.get("period_start")),
                "period_end": _ts_or_none(period.get("period_end")),
            }
            for frame in period.get("consumption") or []:
                start = _ts_or_none(frame.get("timeframe_start"))
                if until is not None and start is not None and start >= until:
                    continue  # a day that has not ended: Neon revises it until it does
                frame_values = {
                    **period_values,
                    "timeframe_start": start,
                    "timeframe_end": _ts_or_none(frame.get("timeframe_end")),
                }
                row = [frame_values.get(name) for name in names]  # the metric's two filled below
                for metric in frame.get("metrics") or []:
                    if drop_zero and not metric["value"]:
                        continue
                    row[metric_at], row[value_at] = metric["metric_name"], metric["value"]
                    for values, value in zip(columns, row, strict=True):
                        values.append(value)
    columns[value_at] = metric_values(columns[value_at], columns[metric_at], listing.route)
    arrays = [
        values if isinstance(values, pyarrow.Array) else pyarrow.array(values, type=schema.field(name).type)
        for name, values in zip(names, columns, strict=True)
    ]
    return pyarrow.Table.from_arrays([*arrays, row_ids(len(columns[value_at]))], schema=schema)


def metric_values(values: list, metric_names: list[str], route: str) -> pyarrow.Array:
    """The metric values as integers, as Neon's spec has them. One sent as a string is read as
    dlt reads a string into an integer column of every other table (`"12"`); anything else fails
    the run naming the metric, rather than leave it out of the totals."""
    try:
        return pyarrow.array(values, type=pyarrow.int64())  # the API's integers: one call
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, OverflowError):
        pass
    typed = []
    for value, metric in zip(values, metric_names, strict=True):
        try:
            typed.append(
                value if value is None else coerce_value("bigint", py_type_to_sc_type(type(value)), value)
            )
        except (ValueError, TypeError, AttributeError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise NeonAPIError(
                route,
                200,
                f"metric {metric} has the value {shown}, not a whole number; Neon's spec says integer",
            ) from None
    return pyarrow.array(typed, type=pyarrow.int64())


# dlt's row id (`_dlt_id`) of a consumption row: random bytes in base64, as dlt's normalize makes
# them, 12 bytes (16 characters, no padding) so that the ids of a page encode in one call.
_ROW_ID_BYTES, _ROW_ID_CHARS = 12, 16


def row_ids(count: int) -> pyarrow.Array:
    """`count` random row ids as one Arrow string array, built from two buffers instead of a
    Python string per row: left to dlt's normalize, they are added a row at a time and every
    parquet file is rewritten for them, the normalize's largest cost on a large account
    (memory.py)."""
    data = base64.b64encode(secrets.token_bytes(count * _ROW_ID_BYTES))
    offsets = array.array("i", range(0, count * _ROW_ID_CHARS + 1, _ROW_ID_CHARS))
    return pyarrow.StringArray.from_buffers(count, pyarrow.py_buffer(offsets), pyarrow.py_buffer(data))


def _ts_or_none(value: str | None) -> datetime | None:
    return parse_ts(value) if value else None
