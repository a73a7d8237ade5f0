"""The route handlers: what the simulator answers on each path (routing.py says which paths).

Routing, query validation, envelopes and pagination follow Neon's spec (``neon-openapi-v2.yaml``).

Pagination, as real Neon does it:

- ``/projects``, ``/projects/{project_id}/operations``, ``/consumption_history/v2/projects`` and
  ``/consumption_history/v2/branches`` always answer ``pagination.cursor``, also on the last page
  and on the empty page after it (a client must stop on a short or empty page, not on a missing
  cursor). Branch consumption pages are ordered by project id, then branch id, as the spec says.
- ``/projects/{project_id}/branches`` answers ``pagination.next`` only while more branches remain,
  beside the effective ``sort_by`` and ``sort_order``. Without ``limit`` it returns every branch.

Cursors are opaque (URL-safe base64 of a small JSON array) and stable: they hold the sort key of
the last item served (keyset pagination), so a page boundary never shifts when earlier items are
deleted. A branches cursor also holds its sort; an explicit, different ``sort_by``/``sort_order``
beside it is a 400. An empty page echoes the cursor it was given.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import UTC, datetime

from neon_api_source import listings

from .account import Account
from .errors import (
    ADMIN_REQUIRED,
    BRANCH_CONSUMPTION_PLAN_REQUIRED,
    CONSUMPTION_PLAN_REQUIRED,
    ORG_ID_REQUIRED,
    ORG_KEY_FORBIDDEN,
    SPENDING_LIMIT_PLAN_REQUIRED,
    VPC_PLAN_REQUIRED,
    ApiError,
)
from .faults import FaultInjector
from .params import parse_query, query_params
from .reference import (
    BRANCH_CONSUMPTION_METRICS,
    BRANCH_CONSUMPTION_PLANS,
    CONSUMPTION_EPOCH,
    CONSUMPTION_METRICS,
)
from .routing import _START_CURSOR, LISTINGS_BY_ROUTE, ROUTE_TEMPLATES, Request, decode_cursor, encode_cursor
from .timestamps import _DAY, _HOUR, month_start

#: How far back each consumption granularity reaches (the spec: 168 hours, 60 days, 1 year).
_CONSUMPTION_HORIZON = {"hourly": "168 hours", "daily": "60 days", "monthly": "1 year"}


class Routes:
    """The route handlers. Each returns the response body; errors raise :class:`ApiError`.

    Handlers run with the account lock held and read its live records (never mutate them).
    """

    def __init__(self, account: Account, faults: FaultInjector | None, stats: Callable[[str, int], None]):
        self.account = account
        self.faults = faults
        self._count_fault = stats
        # Read every route's parameters from the spec now: a spec the simulator cannot check
        # fails here, when the simulator is made, rather than on some later request.
        for template in ROUTE_TEMPLATES:
            query_params(template)

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _reject_org_key(req: Request) -> None:
        if req.key["kind"] == "org":
            raise ApiError(403, ORG_KEY_FORBIDDEN)

    def _member_org(self, req: Request, org_id: str) -> None:
        """404 unless the key may see ``org_id`` (org keys see only their own org)."""
        if req.key["kind"] == "org":
            if org_id != req.key["org_id"]:
                raise ApiError(404, f"organization {org_id} not found")
        elif not self.account._has_org(org_id):
            raise ApiError(404, f"organization {org_id} not found")

    def _project(self, req: Request):
        pid = req.path_params["project_id"]
        try:
            project = self.account._project(pid)
        except KeyError:
            raise ApiError(404, f"project {pid} not found") from None
        if req.key["kind"] == "org" and project.scope != req.key["org_id"]:
            raise ApiError(404, f"project {pid} not found")
        return project

    def _branch(self, req: Request):
        project = self._project(req)
        bid = req.path_params["branch_id"]
        if bid not in project.branches:
            raise ApiError(404, f"branch {bid} not found")
        return project, bid

    def _scope(self, req: Request, org_id: str | None) -> str | None:
        """The project scope a ``/projects`` request lists: an org id, or ``None`` (personal)."""
        if req.key["kind"] == "org":
            if org_id is not None and org_id != req.key["org_id"]:
                raise ApiError(404, f"organization {org_id} not found")
            return req.key["org_id"]
        if org_id is not None:
            self._member_org(req, org_id)
            return org_id
        if self.account._orgs:
            raise ApiError(400, ORG_ID_REQUIRED)
        return None

    def _keyset_page(self, scope: str | None, cursor: str | None, limit: int, search: str | None, ids=None):
        """Newest-first page of a scope's projects after ``cursor``: ``(project ids, next cursor)``."""
        order = self.account._order.get(scope, [])
        end = len(order)
        if cursor is not None:
            end = bisect.bisect_left(order, tuple(decode_cursor(cursor, 2)))
        needle = search.lower() if search else None
        page: list[str] = []
        for index in range(end - 1, -1, -1):
            if len(page) == limit:
                break
            pid = order[index][1]
            if ids is not None and pid not in ids:
                continue
            if (
                needle
                and needle not in pid
                and needle not in self.account._projects[pid].item["name"].lower()
            ):
                continue
            page.append(pid)
        if page:
            last = self.account._projects[page[-1]].item
            return page, encode_cursor(last["created_at"], last["id"])
        return page, cursor or _START_CURSOR

    # -- routes ----------------------------------------------------------------------------------

    def users_me(self, req: Request) -> dict:
        self._reject_org_key(req)
        return self.account._user

    def users_me_organizations(self, req: Request) -> dict:
        self._reject_org_key(req)
        return {"organizations": self.account._orgs}

    def regions(self, req: Request) -> dict:
        self._reject_org_key(req)
        args = parse_query(req.template, req.query)
        if args["org_id"] is not None:
            self._member_org(req, args["org_id"])
        return {"regions": self.account._regions}

    def projects(self, req: Request) -> dict:
        args = parse_query(req.template, req.query)
        scope = self._scope(req, args["org_id"])
        if args["recoverable"]:
            # Deleted projects are gone for good here: there is nothing to recover.
            ids, cursor = [], args["cursor"] or _START_CURSOR
        else:
            ids, cursor = self._keyset_page(scope, args["cursor"], args["limit"], args["search"])
        projects = self.account._projects
        apps = {pid: projects[pid].applications for pid in ids if projects[pid].applications}
        body = {
            "projects": [projects[pid].item for pid in ids],
            "applications": apps,
            "integrations": apps,
            "pagination": {"cursor": cursor},
        }
        if self.faults is not None:
            # The body keeps references to the records, so it is still served in full.
            for pid in self.faults.projects_to_delete(ids):
                self.account.delete_project(pid)
                self._count_fault("delete_project_after_list", 1)
        return body

    def projects_shared(self, req: Request) -> dict:
        args = parse_query(req.template, req.query)
        return {"projects": [], "pagination": {"cursor": args["cursor"] or _START_CURSOR}}

    def project(self, req: Request) -> dict:
        self._project(req)
        return {"project": self.account._project_detail(req.path_params["project_id"])}

    def branches(self, req: Request) -> dict:
        project = self._project(req)
        args = parse_query(req.template, req.query)
        sort_by, sort_order, after = _sort_and_cursor(req, args)
        descending = sort_order == "desc"
        found = list(project.branches.values())
        if args["include_deleted"]:  # restorable deleted branches too, each with `recovery`
            found += self.account.deleted_branches(project.item["id"])
        if args["search"]:
            needle = args["search"].lower()
            found = [b for b in found if needle in b["name"].lower() or needle in b["id"]]
        ordered = sorted(found, key=lambda b: (b[sort_by], b["id"]), reverse=descending)
        if after is not None:
            ordered = [
                b
                for b in ordered
                if ((b[sort_by], b["id"]) < after if descending else (b[sort_by], b["id"]) > after)
            ]
        limit = args["limit"] or len(ordered)
        page = ordered[:limit]
        pagination = {"sort_by": sort_by, "sort_order": sort_order}
        if len(ordered) > limit:
            pagination["next"] = encode_cursor(sort_by, sort_order, page[-1][sort_by], page[-1]["id"])
        annotations = {b["id"]: project.annotations[b["id"]] for b in page if b["id"] in project.annotations}
        return {"branches": page, "annotations": annotations, "pagination": pagination}

    def branch(self, req: Request) -> dict:
        project, bid = self._branch(req)
        annotation = project.annotations.get(bid) or {
            "object": {"type": "console/branch", "id": bid},
            "value": {},
        }
        return {"branch": project.branches[bid], "annotation": annotation}

    def branch_endpoints(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"endpoints": [e for e in project.endpoints if e["branch_id"] == bid]}

    def databases(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"databases": project.databases[bid]}

    def roles(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"roles": project.roles[bid]}

    def endpoints(self, req: Request) -> dict:
        return {"endpoints": self._project(req).endpoints}

    def operations(self, req: Request) -> dict:
        project = self._project(req)
        args = parse_query(req.template, req.query)
        ops = project.operations  # newest first: descending (created_at, id)
        start = 0
        if args["cursor"] is not None:
            key = tuple(decode_cursor(args["cursor"], 2))
            while start < len(ops) and (ops[start]["created_at"], ops[start]["id"]) >= key:
                start += 1
        page = ops[start : start + args["limit"]] if args["limit"] else ops[start:]
        cursor = (
            encode_cursor(page[-1]["created_at"], page[-1]["id"]) if page else args["cursor"] or _START_CURSOR
        )
        return {"operations": page, "pagination": {"cursor": cursor}}

    def operation(self, req: Request) -> dict:
        project = self._project(req)
        op_id = req.path_params["operation_id"]
        for op in project.operations:
            if op["id"] == op_id:
                return {"operation": op}
        raise ApiError(404, f"operation {op_id} not found")

    @staticmethod
    def _check_metrics(args: dict, supported: tuple[str, ...]) -> None:
        """A 400 for a metric name the route does not support (the spec lists them in prose)."""
        unknown = [m for m in args["metrics"] if m not in supported]
        if unknown:
            raise ApiError(
                400, f"unsupported metrics: {', '.join(unknown)}; supported: {', '.join(supported)}"
            )

    def _consumption_range(self, args: dict) -> tuple[int, int]:
        """``from`` and ``to`` rounded down to the granularity; a 406 for a range it does not allow."""
        granularity = args["granularity"]
        start, end = (_round_down(args[k], granularity) for k in ("from", "to"))
        if start > end or start < _horizon(self.account.now_epoch, granularity):
            raise ApiError(
                406,
                f"the from/to range is not valid for granularity {granularity}: from must not be after "
                f"to, nor before {CONSUMPTION_EPOCH:%Y-%m-%d} or older than {_CONSUMPTION_HORIZON[granularity]}",
            )
        return start, end

    def consumption(self, req: Request) -> dict:
        args = parse_query(req.template, req.query)
        self._check_metrics(args, CONSUMPTION_METRICS)
        org_id, granularity = args["org_id"], args["granularity"]
        self._member_org(req, org_id)
        if org_id not in self.account._plan_orgs:
            raise ApiError(403, CONSUMPTION_PLAN_REQUIRED)
        start, end = self._consumption_range(args)
        ids = set(args["project_ids"]) if args["project_ids"] else None
        page, cursor = self._keyset_page(org_id, args["cursor"], args["limit"], None, ids)
        projects = [
            {
                "project_id": pid,
                "periods": self.account._consumption_periods(
                    self.account._projects[pid], granularity, start, end, args["metrics"]
                ),
            }
            for pid in page
        ]
        return {"projects": projects, "pagination": {"cursor": cursor}}

    def branch_consumption(self, req: Request) -> dict:
        """Every branch (deleted ones too) of the listed projects of the organization, by project id
        and branch id; ids of projects elsewhere are ignored, as the projects route ignores them."""
        args = parse_query(req.template, req.query)
        self._check_metrics(args, BRANCH_CONSUMPTION_METRICS)
        org_id, granularity = args["org_id"], args["granularity"]
        self._member_org(req, org_id)
        org = self.account._org_by_id.get(org_id)
        if org_id not in self.account._plan_orgs or org["plan"] not in BRANCH_CONSUMPTION_PLANS:
            raise ApiError(403, BRANCH_CONSUMPTION_PLAN_REQUIRED)
        start, end = self._consumption_range(args)
        projects = self.account._projects
        pids = sorted(p for p in args["project_ids"] if p in projects and projects[p].scope == org_id)
        wanted = set(args["branch_ids"]) if args["branch_ids"] else None
        after = tuple(decode_cursor(args["cursor"], 2)) if args["cursor"] is not None else ("", "")
        page: list[dict] = []
        for pid in pids:
            if len(page) == args["limit"]:
                break
            if pid < after[0]:
                continue
            periods = self.account._branch_consumption_periods(
                projects[pid], granularity, start, end, args["metrics"]
            )
            for bid in sorted(periods):
                if (pid, bid) <= after or (wanted is not None and bid not in wanted):
                    continue
                if len(page) == args["limit"]:
                    break
                page.append({"project_id": pid, "branch_id": bid, "periods": periods[bid]})
        if page:
            cursor = encode_cursor(page[-1]["project_id"], page[-1]["branch_id"])
        else:
            cursor = args["cursor"] or _START_CURSOR
        return {"branches": page, "pagination": {"cursor": cursor}}

    # -- who can reach the estate (access.py) -----------------------------------------------------

    def _org_admin(self, req: Request, org_id: str) -> None:
        """403 unless the key acts as an admin of ``org_id`` (an organization key does, in its own)."""
        self._member_org(req, org_id)
        if req.key["kind"] != "org" and self.account.org_role(org_id) != "admin":
            raise ApiError(403, ADMIN_REQUIRED)

    def _private_networking(self, org_id: str | None) -> None:
        if org_id not in self.account._plan_orgs:
            raise ApiError(403, VPC_PLAN_REQUIRED)

    def org_members(self, req: Request) -> dict:
        """Members with their user info, paged like branches: ``pagination.next`` while more remain."""
        org_id = req.path_params["org_id"]
        self._member_org(req, org_id)
        args = parse_query(req.template, req.query)
        sort_by, sort_order, after = _sort_and_cursor(req, args)

        def key(record: dict) -> tuple[str, str]:
            value = record["user"]["email"] if sort_by == "email" else record["member"].get(sort_by, "")
            return value, record["member"]["id"]

        descending = sort_order == "desc"
        ordered = sorted(self.account._members.get(org_id, []), key=key, reverse=descending)
        if after is not None:
            ordered = [m for m in ordered if (key(m) < after if descending else key(m) > after)]
        limit = args["limit"] or len(ordered)
        page = ordered[:limit]
        pagination = {"sort_by": sort_by, "sort_order": sort_order}
        if len(ordered) > limit:
            pagination["next"] = encode_cursor(sort_by, sort_order, *key(page[-1]))
        return {"members": page, "pagination": pagination}

    def org_api_keys(self, req: Request) -> list:
        """A bare JSON array, as the spec has it; never the keys' tokens (unless serve_secrets)."""
        org_id = req.path_params["org_id"]
        self._org_admin(req, org_id)
        return self.account._api_keys_served(org_id)

    def org_vpc_endpoints(self, req: Request) -> dict:
        org_id = req.path_params["org_id"]
        self._org_admin(req, org_id)
        self._private_networking(org_id)
        return {"endpoints": self.account._org_vpc.get(org_id, [])}

    def project_permissions(self, req: Request) -> dict:
        project = self._project(req)
        return {"project_permissions": self.account._permissions.get(project.item["id"], [])}

    def project_vpc_endpoints(self, req: Request) -> dict:
        project = self._project(req)
        self._private_networking(project.scope)
        return {"endpoints": self.account._project_vpc.get(project.item["id"], [])}

    def listing(self, req: Request) -> dict | list:
        """A listing without a handler of its own: the account's records of it under the parent
        the path names, in one page, in the listing's envelope (a bare array without one)."""
        listing = LISTINGS_BY_ROUTE[req.template]
        if listing.parent == listings.ORG:
            parent = req.path_params["org_id"]
            self._member_org(req, parent)
        elif listing.parent == listings.BRANCH:
            _, parent = self._branch(req)
        else:
            parent = self._project(req).item["id"]
        items = self.account.listed_under(req.template, parent)
        return items if listing.envelope is None else {listing.envelope: items}

    def project_members(self, req: Request) -> dict:
        """The organization's members and their access to the project, by member id, paged on
        ``pagination.next`` while more remain. 404 for a personal project; a caller who is no
        admin of the organization sees only the members with access."""
        project = self._project(req)
        if project.scope is None:
            raise ApiError(404, "project members are listed for an organization's projects only")
        if not self.account.project_roles_enabled(project.scope):
            raise ApiError(404, "per-project permissions are not enabled for this organization")
        args = parse_query(req.template, req.query)
        admin = req.key["kind"] == "org" or self.account.org_role(project.scope) == "admin"
        ordered = self.account.project_members(project.item["id"], see_unassigned=admin)
        if args["cursor"] is not None:
            (after,) = decode_cursor(args["cursor"], 1)
            ordered = [m for m in ordered if m["member_id"] > after]
        limit = args["limit"] or len(ordered)
        page = ordered[:limit]
        body: dict = {"project_members": page}
        if len(ordered) > limit:
            body["pagination"] = {"next": encode_cursor(page[-1]["member_id"])}
        return body

    # -- backup schedules, spending limits ---------------------------------------------------

    def backup_schedule(self, req: Request) -> dict:
        project, bid = self._branch(req)
        return {"schedule": self.account.backup_schedule(project.item["id"], bid)}

    def spending_limit(self, req: Request) -> dict:
        """A Launch or Scale organization's limit (any member, or its own key); 403 on other plans."""
        org_id = req.path_params["org_id"]
        self._member_org(req, org_id)
        try:
            return {"spending_limit_cents": self.account.spending_limit(org_id)}
        except KeyError:
            raise ApiError(403, SPENDING_LIMIT_PLAN_REQUIRED) from None


def _sort_and_cursor(req: Request, args: dict) -> tuple[str, str, tuple[str, str] | None]:
    """The sort of a list paged by `next` (branches, members) and the (value, id) to start after.
    The cursor holds its own sort: one given beside it must be the same, else 400."""
    sort_by, sort_order = args["sort_by"], args["sort_order"]  # or the spec's defaults
    if args["cursor"] is None:
        return sort_by, sort_order, None
    cursor_by, cursor_order, value, last_id = decode_cursor(args["cursor"], 4)
    declared = query_params(req.template)
    if cursor_by not in declared["sort_by"].choices or cursor_order not in declared["sort_order"].choices:
        raise ApiError(400, "invalid cursor")
    if ("sort_by" in req.query and sort_by != cursor_by) or (
        "sort_order" in req.query and sort_order != cursor_order
    ):
        raise ApiError(400, "sort_by and sort_order must match the cursor")
    return cursor_by, cursor_order, (value, last_id)


def _round_down(epoch: int, granularity: str) -> int:
    """Round a ``from``/``to`` value down to its granularity, as the spec describes."""
    if granularity == "hourly":
        return epoch - epoch % _HOUR
    if granularity == "daily":
        return epoch - epoch % _DAY
    return month_start(epoch)


def _horizon(now: int, granularity: str) -> int:
    """The earliest allowed (rounded) ``from`` for a granularity at the account clock ``now``."""
    if granularity == "hourly":
        earliest = now - now % _HOUR - 168 * _HOUR
    elif granularity == "daily":
        earliest = now - now % _DAY - 60 * _DAY
    else:
        d = datetime.fromtimestamp(now, UTC)
        earliest = int(datetime(d.year - 1, d.month, 1, tzinfo=UTC).timestamp())
    return max(earliest, int(CONSUMPTION_EPOCH.timestamp()))
