"""Which paths the simulator serves and which handler (routes.py) answers each; the request a
handler sees; and the opaque cursors its listings page with."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from neon_api_source import listings

from .errors import ApiError

# --------------------------------------------------------------------------------------------------
# Cursors
# --------------------------------------------------------------------------------------------------


def encode_cursor(*parts: str) -> str:
    """An opaque cursor holding string ``parts`` (URL-safe base64 of a JSON array, no padding)."""
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, arity: int) -> list:
    """The parts of a cursor from :func:`encode_cursor`; a malformed one is a 400."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity or not all(isinstance(p, str) for p in parts):
        raise ApiError(400, "invalid cursor")
    return parts


#: The cursor of an empty first page: it sorts before every item, so the next page is empty too.
_START_CURSOR = encode_cursor("", "")


# --------------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------------


@dataclass
class Request:
    """What a route handler sees of a request."""

    template: str
    path_params: dict[str, str]
    query: dict[str, list[str]]
    key: dict  # {"kind": "personal"} or {"kind": "org", "org_id": ...}


#: The routes beside the source's listings: single objects, and what the source does not read.
_OTHER_ROUTES: list[tuple[str, str]] = [
    ("/users/me", "users_me"),
    ("/projects/shared", "projects_shared"),
    ("/projects/{project_id}", "project"),
    ("/projects/{project_id}/branches/{branch_id}", "branch"),
    ("/projects/{project_id}/branches/{branch_id}/endpoints", "branch_endpoints"),
    ("/projects/{project_id}/operations/{operation_id}", "operation"),
]
#: The listings the source reads (neon_api_source.listings) whose answer needs a handler of its
#: own (paging, plans, admin checks), with its name. Any other listing is served by
#: `routes.Routes.listing` from the account's records of it (`Account.listed_under`).
_LISTING_HANDLERS = {
    listing.route: handler
    for listing, handler in (
        (listings.ORGANIZATIONS, "users_me_organizations"),
        (listings.REGIONS, "regions"),
        (listings.PROJECTS, "projects"),
        (listings.BRANCHES, "branches"),
        (listings.DATABASES, "databases"),
        (listings.ROLES, "roles"),
        (listings.ENDPOINTS, "endpoints"),
        (listings.OPERATIONS, "operations"),
        (listings.CONSUMPTION, "consumption"),
        (listings.BRANCH_CONSUMPTION, "branch_consumption"),
        # who can reach the estate (access.py)
        (listings.ORGANIZATION_MEMBERS, "org_members"),
        (listings.ORGANIZATION_API_KEYS, "org_api_keys"),
        (listings.ORGANIZATION_VPC_ENDPOINTS, "org_vpc_endpoints"),
        (listings.PROJECT_PERMISSIONS, "project_permissions"),
        (listings.PROJECT_VPC_ENDPOINTS, "project_vpc_endpoints"),
        (listings.PROJECT_MEMBERS, "project_members"),  # live.py
        (listings.BACKUP_SCHEDULES, "backup_schedule"),  # backups.py
        (listings.ORGANIZATION_SPENDING_LIMITS, "spending_limit"),  # live.py
    )
}
#: The listings by route: a listing's parent and envelope (`routes.Routes.listing`).
LISTINGS_BY_ROUTE = {listing.route: listing for listing in listings.LISTINGS}
#: The routes of listings served from the account's records (`Account.listed_under`).
PLAIN_ROUTES = frozenset(route for route in listings.ROUTE_LABELS if route not in _LISTING_HANDLERS)
_ROUTES: list[tuple[str, str]] = [
    *_OTHER_ROUTES,
    *((route, _LISTING_HANDLERS.get(route, "listing")) for route in listings.ROUTE_LABELS),
]
#: The route templates the simulator serves.
ROUTE_TEMPLATES: tuple[str, ...] = tuple(template for template, _ in _ROUTES)


def _compile(template: str) -> re.Pattern:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return re.compile(f"^{pattern}$")


# Literal routes first, so that /projects/shared is not taken for a project id.
_COMPILED = sorted(
    ((template, _compile(template), name) for template, name in _ROUTES), key=lambda r: "{" in r[0]
)


def match_route(path: str) -> tuple[str, str, dict[str, str]] | None:
    """``(template, handler name, path parameters)`` for a path below ``/api/v2``, or ``None``."""
    for template, regex, name in _COMPILED:
        found = regex.match(path)
        if found:
            return template, name, {k: unquote(v) for k, v in found.groupdict().items()}
    return None
