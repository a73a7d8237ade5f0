"""Who can reach the estate: the listings an access review reads, as resources of the source.

Organization members, API keys and VPC endpoints are read per organization on every run;
project shares and VPC restrictions per project with the project's full reading (else carried
from the warehouse); project members per organization project on every run. Each listing's
route, paging and columns are its row in listings/access.py; `access_coverage` says, for each
listing and organization or project, read or refused, when, and why.

A key may not read every listing: organization API keys and VPC endpoints need an admin, VPC
endpoints a paid plan. A 403 (or an organization's 404) is noted in the run summary and skipped,
and `access_coverage` keeps it, so the marts can tell "nobody" from "not visible". A project's
listing that answers 404 means the project was deleted since it was listed: as for its branches,
the run counts it with its skipped 404s, and the project is left out of that listing.

Per-project permissions (`project_members`, declared in Neon's live spec) replace shares as the way
people reach a project; Neon signals no change to them, and a stale grant is the worst thing an
access review can show, so they are read on every run, one request (a page of 500) per project of
an organization (personal projects have none: no request). A 403 (a plan or key without
per-project permissions) is noted and skipped. Neon answers 404 both for a project deleted since it
was listed and where per-project permissions are off: the run asks for the project itself (one
request, on a 404 only); still there, the listing is noted as not visible (coverage status 404),
else the project is counted with the skipped 404s, as for shares.

Emails (a member's, a share's) are personal data Neon's spec marks `x-sensitive`. They land in
`organization_members.email`, `project_permissions.granted_to_email` and `project_members.email`
only; no message of this
module names one (an API message is redacted before it is noted). With `hash_emails` they never
leave this module as addresses: each is replaced by `hmac-sha256:<hex>`, an HMAC-SHA256 of the
trimmed, lower-cased address keyed with a secret salt, so the same address gets the same value in
both tables (shares still join members) and nobody without the salt can test a guess. Key tokens
are never columns: the listing has none, and `pick` keeps declared fields only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dlt

from . import incremental, settings
from .helpers import NeonAPIError, SourceConfigError
from .listings import (
    ACCESS_LISTINGS,
    COVERAGE_COLUMNS,
    COVERAGE_REQUIRED,
    COVERAGE_TABLE,
    ORG,
    ORGANIZATION_API_KEYS,
    ORGANIZATION_MEMBERS,
    ORGANIZATION_VPC_ENDPOINTS,
    PARENT_ID,
    PROJECT_PERMISSIONS,
    PROJECT_VPC_ENDPOINTS,
    PROJECTS,
    WITH_FULL_READING,
    Listing,
    column_hints,
)
from .reading import fan_out, listed_row, pages, pick

PERSONAL_PROJECT = "personal project: no organization members"
PROJECT_ROUTE = f"{PROJECTS.route}/{{project_id}}"  # asked on a 404 only: still there, or deleted since?
EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")

# ------------------------------------------------------------------------------------------- emails


class Emails:
    """How email addresses land: as Neon sends them, or as a keyed hash (`hash_emails`)."""

    def __init__(self, hash_emails: bool = False, salt: str | None = None):
        if hash_emails and len(salt or "") < settings.EMAIL_HASH_SALT_MIN_LENGTH:
            raise SourceConfigError(
                "hash_emails is on but email_hash_salt is missing or shorter than "
                f"{settings.EMAIL_HASH_SALT_MIN_LENGTH} characters: put a long random secret under "
                "[sources.neon_api_source] in .dlt/secrets.toml (or SOURCES__NEON_API_SOURCE__EMAIL_HASH_SALT), "
                "and keep it: another salt gives other hashes"
            )
        self._key = salt.encode() if hash_emails and salt else None

    @property
    def mode(self) -> str:
        """`plain`, or the hash and a fingerprint of its salt: a change of either means the
        addresses carried from the warehouse no longer match the ones read now."""
        if self._key is None:
            return "plain"
        return settings.EMAIL_HASH_PREFIX + hashlib.sha256(self._key).hexdigest()[:16]

    def __call__(self, email: str | None) -> str | None:
        if email is None or self._key is None:
            return email
        return hash_email(email, self._key)


def hash_email(email: str, salt: str | bytes) -> str:
    """`hmac-sha256:<hex>` of the trimmed, lower-cased address, keyed with the salt."""
    key = salt.encode() if isinstance(salt, str) else salt
    digest = hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return settings.EMAIL_HASH_PREFIX + digest


def redact(text: str) -> str:
    """An API message fit for a log line: any address in it replaced."""
    return EMAIL.sub("<email>", text)


# ------------------------------------------------------------------------------------------ reading


def _read_or_refused(fetch, *args, refused=(403, 404)) -> tuple[list[dict], int, str | None]:
    """`fetch(*args)`'s rows with status 200, or none with the status the key met (one of
    `refused`) and Neon's reason, redacted; any other error goes on up."""
    try:
        return fetch(*args), 200, None
    except NeonAPIError as exc:
        if exc.status not in refused:
            raise
        return [], exc.status, redact(exc.detail)


class Access:
    """The access listings of one run, read once and shared by the resources below."""

    def __init__(self, estate: Any, emails: Emails):
        self.estate = estate
        self.emails = emails

    # organizations ------------------------------------------------------------------------------

    def per_org(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        """Org id -> (rows, coverage row) of an organization-wide listing, read this run."""
        return self.estate._once(f"access:{listing.table}", lambda: self._read_orgs(listing))

    def _read_orgs(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        fetch = {
            ORGANIZATION_MEMBERS.table: self._members,
            ORGANIZATION_API_KEYS.table: self._api_keys,
        }.get(listing.table) or functools.partial(self._plain_rows, listing)
        result = {}
        for org_id in self.estate.org_ids():
            rows, status, detail = _read_or_refused(fetch, org_id)
            result[org_id] = (
                rows,
                self._coverage(listing, org_id, org_id, None, status, detail, "every run"),
            )
        self._note_refusals(listing, [cov for _, cov in result.values()], "organization")
        return result

    def _members(self, org_id: str) -> list[dict]:
        rows = []
        listing = ORGANIZATION_MEMBERS
        (user_columns,) = (columns for _, columns in listing.nested.values())
        for page in pages(self.estate.client, listing, org_id=org_id):
            for item in page:  # each item: the membership (`member`) and the person (`user`)
                row = {**pick(item.get("member") or {}, listing.columns), "org_id": org_id}
                row.update(pick(item.get("user") or {}, user_columns))
                row["email"] = self.emails(row.get("email"))
                rows.append(row)
        return rows

    def _api_keys(self, org_id: str) -> list[dict]:
        rows = []
        for page in pages(self.estate.client, ORGANIZATION_API_KEYS, org_id=org_id):
            for item in page:
                row = {**pick(item, ORGANIZATION_API_KEYS.columns), "org_id": org_id}
                row["created_by_user_id"] = (item.get("created_by") or {}).get("id")
                rows.append(row)
        return rows

    def _plain_rows(self, listing: Listing, scope_id: str) -> list[dict]:
        """A plain listing's rows of one organization or project, as the listing describes them:
        its columns, a nested object's, the parent's id and, if the table has it, `confirmed_at`;
        the email column, if any, as `hash_emails` wants it."""
        parent = PARENT_ID[listing.parent]
        rows = []
        for page in pages(self.estate.client, listing, **{parent: scope_id}):
            for item in page:
                row = listed_row(listing, item)
                if listing.emails:
                    row[listing.emails] = self.emails(row.get(listing.emails))
                row[parent] = scope_id
                if listing.confirmed:
                    row["confirmed_at"] = self.estate.run_at
                rows.append(row)
        return rows

    # projects ---------------------------------------------------------------------------------

    def per_project(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        """Project id -> (rows, coverage row) of a per-project listing: read or carried."""
        return self.estate._once(f"access:{listing.table}", lambda: self._read_projects(listing))

    def _read_projects(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        estate = self.estate
        planner = estate.planner()
        previous = planner.previous  # the last run's state, access rows included (None: nothing to carry)
        state = dlt.current.source_state().setdefault("access", {})
        email_changed = state.get("email_mode", self.emails.mode) != self.emails.mode
        vpc = listing == PROJECT_VPC_ENDPOINTS
        orgs_vpc = self.per_org(ORGANIZATION_VPC_ENDPOINTS) if vpc else {}
        # organizations whose endpoints differ from the warehouse's: their projects' restrictions are re-read
        vpc_changed = {
            org_id
            for org_id, (endpoints, _) in orgs_vpc.items()
            if sorted(e["vpc_endpoint_id"] for e in endpoints)
            != (previous.org_vpc_endpoints.get(org_id) if previous else None)
        }
        result: dict[str, tuple[list[dict], dict]] = {}
        wanted: list[tuple[str, str | None, str]] = []
        for project in estate.projects():
            pid, org_id = project["id"], project.get("org_id")
            if vpc:
                settled = self._vpc_settled(pid, org_id, orgs_vpc)
                if settled is not None:
                    result[pid] = settled
                    continue
            reason = incremental.access_reason(
                planner.plan.projects[pid],
                previous,
                listing.table,
                email_setting_changed=email_changed,
                org_vpc_changed=org_id in vpc_changed,
            )
            if reason is None:
                assert previous is not None
                result[pid] = previous.carried(listing, pid)
            else:
                wanted.append((pid, org_id, reason))

        def one(item: tuple[str, str | None, str]) -> tuple[str, tuple[list[dict], dict] | None]:
            pid, org_id, reason = item
            # a 404 is not a refusal: the project was deleted since it was listed
            answer = estate.unless_deleted(
                lambda: _read_or_refused(self._plain_rows, listing, pid, refused=(403,))
            )
            if answer is None:
                return pid, None
            rows, status, detail = answer
            return pid, (rows, self._coverage(listing, pid, org_id, pid, status, detail, reason))

        read = 0
        for pid, found in fan_out(one, wanted, estate.workers):
            if found is not None:
                result[pid] = found
                read += 1
        self._note_refusals(listing, [cov for _, cov in result.values()], "project")
        if listing == PROJECT_PERMISSIONS:
            state["email_mode"] = self.emails.mode
            estate.stats.note(
                f"access review: shares of all {read:,} projects read"
                if read == len(result)
                else f"access review: shares of {read:,} of {len(result):,} projects read, the rest "
                f"carried from the warehouse (re-read with each project's full reading, every "
                f"{estate.full_refresh_days} days at the latest)"
            )
        return result

    def _vpc_settled(self, pid: str, org_id: str | None, orgs_vpc: dict) -> tuple[list[dict], dict] | None:
        """A project whose VPC restrictions need no request: its organization has no VPC
        endpoints (or it has no organization), or they could not be seen."""
        if org_id is None or org_id not in orgs_vpc:
            return [], self._coverage(PROJECT_VPC_ENDPOINTS, pid, org_id, pid, None, "no organization", None)
        endpoints, org_coverage = orgs_vpc[org_id]
        if not org_coverage["is_visible"]:
            detail = f"the organization's VPC endpoints are not visible ({org_coverage['status']})"
            return [], {
                **self._coverage(PROJECT_VPC_ENDPOINTS, pid, org_id, pid, None, detail, None),
                "is_visible": False,
            }
        if not endpoints:
            detail = "the organization has no VPC endpoints"
            return [], self._coverage(PROJECT_VPC_ENDPOINTS, pid, org_id, pid, None, detail, "every run")
        return None

    # plain per-project listings ------------------------------------------------------------

    def per_project_plain(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        """Project id -> (rows, coverage row) of a plain per-project listing, read this run for
        every project (with `org_projects_only`, a personal project gets a coverage row and no
        request)."""
        return self.estate._once(f"access:{listing.table}", lambda: self._read_plain_projects(listing))

    def _read_plain_projects(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        estate = self.estate
        result: dict[str, tuple[list[dict], dict]] = {}
        wanted = []
        for project in estate.projects():
            pid, org_id = project["id"], project.get("org_id")
            if org_id is None and listing.org_projects_only:
                result[pid] = [], self._coverage(listing, pid, None, pid, None, PERSONAL_PROJECT, None)
            else:
                wanted.append((pid, org_id))

        def one(item: tuple[str, str | None]) -> tuple[str, tuple[list[dict], dict] | None]:
            pid, org_id = item
            # a 403 is a refusal; a 404 is one too when the project is still there (Neon answers
            # 404 where a feature is off: per-project permissions), else the project was deleted
            # since it was listed
            rows, status, detail = _read_or_refused(self._plain_rows, listing, pid, refused=(403, 404))
            if status == 404 and not self._still_there(pid):
                estate.stats.add(skipped_404=1)  # the listing's 404; the project's is counted too
                return pid, None
            return pid, (rows, self._coverage(listing, pid, org_id, pid, status, detail, "every run"))

        for pid, found in fan_out(one, wanted, estate.workers):
            if found is not None:
                result[pid] = found
        self._note_refusals(listing, [cov for _, cov in result.values()], "project")
        return result

    def _still_there(self, pid: str) -> bool:
        """A project's listing that answers 404: the project itself tells a project deleted since
        it was listed from a feature that is off."""
        found = self.estate.unless_deleted(lambda: self.estate.client.get(PROJECT_ROUTE, project_id=pid))
        return found is not None

    def by_scope(self, listing: Listing) -> dict[str, tuple[list[dict], dict]]:
        """Organization or project id -> (rows, coverage row) of an access listing."""
        if listing.parent == ORG:
            return self.per_org(listing)
        if listing.carried == WITH_FULL_READING:
            return self.per_project(listing)
        return self.per_project_plain(listing)

    # coverage ---------------------------------------------------------------------------------

    def _coverage(self, listing: Listing, scope_id, org_id, project_id, status, detail, reason) -> dict:
        return {
            "listing": listing.table,
            "scope_id": scope_id,
            "org_id": org_id,
            "project_id": project_id,
            "is_visible": status in (200, None),
            "status": status,
            "detail": detail,
            "read_reason": reason,
            "confirmed_at": self.estate.run_at,
        }

    def _note_refusals(self, listing: Listing, coverage: list[dict], scope: str) -> None:
        """One summary line per kind of refusal met this run: what, how many, and Neon's reason."""
        refused = Counter(
            (c["status"], c["detail"])
            for c in coverage
            if not c["is_visible"] and c["status"] is not None and c["confirmed_at"] == self.estate.run_at
        )
        for (status, detail), n in sorted(refused.items(), key=lambda kv: -kv[1]):
            where = f"{n:,} {scope}{'s' if n > 1 else ''}"
            self.estate.stats.skipped_optional.append(
                f"{listing.noun} of {where}: {status} {detail} (not visible; the marts say so)"
            )

    def coverage_rows(self) -> list[dict]:
        return [cov for listing in ACCESS_LISTINGS for _, cov in self.by_scope(listing).values()]


# ---------------------------------------------------------------------------------------- resources


def resources(access: Access) -> list[Any]:
    """The access review's resources: a bespoke one per listing read here, one made from its
    description (listings/) per plain listing, then the coverage."""
    bespoke = {
        ORGANIZATION_MEMBERS.table: organization_members,
        ORGANIZATION_API_KEYS.table: organization_api_keys,
        PROJECT_PERMISSIONS.table: project_permissions,
        PROJECT_VPC_ENDPOINTS.table: project_vpc_endpoints,
    }
    made = [
        bespoke[listing.table](access) if listing.table in bespoke else plain_resource(access, listing)
        for listing in ACCESS_LISTINGS
    ]
    return [*made, access_coverage(access)]


def _listing_rows(access: Access, listing: Listing) -> Iterator[list[dict]]:
    """Every row of one listing, counted for the summary (a per-project one: read or carried)."""
    rows = [row for rows, _ in access.by_scope(listing).values() for row in rows]
    access.estate.stats.count_rows(listing.table, len(rows))
    if rows:
        yield rows


def plain_resource(access: Access, listing: Listing) -> Any:
    """The resource of a plain listing, made from its description: every organization's (or every
    organization project's) rows, read on every run, refusals kept in `access_coverage`."""

    def rows(access: Access) -> Iterator[Any]:
        yield dlt.mark.materialize_table_schema()  # the table exists even when empty
        yield from _listing_rows(access, listing)

    return dlt.resource(rows, **listing.resource_args())(access)


@dlt.resource(**ORGANIZATION_MEMBERS.resource_args())
def organization_members(access: Access) -> Iterator[Any]:
    """Members of every organization, with their email (or its hash), MFA and deactivation."""
    yield dlt.mark.materialize_table_schema()  # the table exists even when empty
    yield from _listing_rows(access, ORGANIZATION_MEMBERS)


@dlt.resource(**ORGANIZATION_API_KEYS.resource_args())
def organization_api_keys(access: Access) -> Iterator[Any]:
    """Organization API keys: who made them, when each was last used and from where. No tokens."""
    yield dlt.mark.materialize_table_schema()
    yield from _listing_rows(access, ORGANIZATION_API_KEYS)


@dlt.resource(**PROJECT_PERMISSIONS.resource_args())
def project_permissions(access: Access) -> Iterator[Any]:
    """Project shares, revoked ones included: read with each project's full reading, else carried."""
    yield dlt.mark.materialize_table_schema()
    yield from _listing_rows(access, PROJECT_PERMISSIONS)


@dlt.resource(**PROJECT_VPC_ENDPOINTS.resource_args())
def project_vpc_endpoints(access: Access) -> Iterator[Any]:
    """The VPC endpoints each project accepts connections through (its VPC restrictions)."""
    yield dlt.mark.materialize_table_schema()
    yield from _listing_rows(access, PROJECT_VPC_ENDPOINTS)


@dlt.resource(
    name=COVERAGE_TABLE,
    primary_key=["listing", "scope_id"],
    write_disposition="replace",
    columns=column_hints(COVERAGE_COLUMNS, COVERAGE_REQUIRED),
)
def access_coverage(access: Access) -> Iterator[Any]:
    """For each access listing and organization or project: whether the key could read it (the
    HTTP status, and Neon's reason when it could not), when and why it was last read."""
    yield dlt.mark.materialize_table_schema()
    rows = access.coverage_rows()
    access.estate.stats.count_rows(COVERAGE_TABLE, len(rows))
    if rows:
        yield rows
