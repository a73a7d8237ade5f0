"""How listings are read: paging (Neon's two cursor schemes), fan-out of child requests over
threads, the fields kept of each record, and Neon's timestamps.

Paging is hand-written rather than dlt's `JSONResponseCursorPaginator`: dlt's paginators drive
dlt's own `RESTClient` and its `requests.Response`s, while every request here goes through
`NeonClient` (one limiter, retries, body checks), and Neon's `pagination.cursor` outlives the
last page (an empty page ends the listing, a repeated cursor is an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import Any

from . import listings, settings
from .helpers import NeonClient, PaginationError
from .limiter import mark_worker

# ----------------------------------------------------------------------------------------- pagination


def paginate_cursor(
    client: NeonClient,
    route: str,
    items_key: str,
    params: Mapping[str, Any],
    validate: Callable[[dict], str | None] | None = None,
    convert: Callable[[list[dict]], Any] | None = None,
    **path: str,
) -> Iterator[Any]:
    """`pagination.cursor` paging (projects, operations, consumption).

    Neon always returns a cursor, also after the last page, so a page without items ends the
    listing; a cursor seen before is an error rather than an endless loop. With `convert`, each
    page is yielded converted (consumption: to an Arrow table), and the page's dicts are freed
    before the caller gets it rather than held while the caller works on the next one.
    """
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_params = dict(params, cursor=cursor) if cursor else dict(params)
        body = client.get(route, page_params, validate, **path)
        items = body.get(items_key) or []
        if not items:
            return
        cursor = (body.get("pagination") or {}).get("cursor")
        page = convert(items) if convert else items
        del body, items
        yield page
        del page
        if not cursor:
            return
        if cursor in seen:
            raise PaginationError(route, 200, f"the API repeated cursor {cursor!r}")
        seen.add(cursor)


def paginate_next(
    client: NeonClient, route: str, items_key: str, params: Mapping[str, Any], **path: str
) -> Iterator[list[dict]]:
    """`pagination.next` paging (branches): the API sends `next` only while more remain."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page_params = dict(params, cursor=cursor) if cursor else dict(params)
        body = client.get(route, page_params, **path)
        items = body.get(items_key) or []
        if items:
            yield items
        cursor = (body.get("pagination") or {}).get("next")
        if not cursor or not items:
            return
        if cursor in seen:
            raise PaginationError(route, 200, f"the API repeated cursor {cursor!r}")
        seen.add(cursor)


def pages(
    client: NeonClient,
    listing: listings.Listing,
    params: Mapping[str, Any] | None = None,
    validate: Callable[[dict], str | None] | None = None,
    convert: Callable[[list[dict]], Any] | None = None,
    **path: str,
) -> Iterator[Any]:
    """A listing's pages, by the paging its description names, with its largest page size: a page
    is the items under its envelope (a listing that does not page: the one body's, if any)."""
    params = dict(params or {})
    if listing.page_limit:
        params.setdefault("limit", listing.page_limit)
    if listing.paginator == listings.CURSOR:
        yield from paginate_cursor(client, listing.route, listing.envelope, params, validate, convert, **path)
        return
    if listing.paginator == listings.NEXT:
        yield from paginate_next(client, listing.route, listing.envelope, params, **path)
        return
    body = client.get(listing.route, params or None, validate, **path)
    items = body if listing.envelope is None else body.get(listing.envelope) or []
    if items:
        yield convert(items) if convert else items


# ------------------------------------------------------------------------------------------ time


def parse_ts(value: str) -> datetime:
    """A timestamp as Neon writes it (ISO 8601, `Z` for UTC)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    """A moment as Neon takes it in a query: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------- concurrency


def fan_out(fn: Callable[[Any], Any], items: Iterable[Any], workers: int) -> Iterator[Any]:
    """Run `fn` over `items` on `workers` threads and yield results as they complete.

    At most two tasks per worker are in flight, so memory stays flat however long `items` is.
    The first exception cancels what has not started and propagates.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="neon", initializer=mark_worker)
    pending: set = set()
    try:
        for item in items:
            pending.add(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------ shaping


def scrub(value: Any) -> Any:
    """Drop credential-bearing keys at any depth (role passwords, connection URIs)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k.lower() not in settings.CREDENTIAL_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def pick(record: Mapping[str, Any], columns: Mapping[str, str]) -> dict:
    """The record's values for `columns`, scrubbed; absent fields stay absent (the column hints
    create them as NULL)."""
    return {name: scrub(record[name]) for name in columns if name in record}


def listed_row(listing: listings.Listing, item: Mapping[str, Any]) -> dict:
    """A listing's item as its table's row: its columns, and those of its nested objects
    (`listing.nested`), each picked."""
    row = pick(item, listing.columns)
    for name, (_, columns) in listing.nested.items():
        row.update(pick(item.get(name) or {}, columns))
    return row
