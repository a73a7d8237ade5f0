"""Who can reach an account's estate: organization members, organization API keys, project shares
(Neon's project *permissions*) and private networking (VPC endpoints and the projects restricted to
them), plus the connection settings an access review reads off each project.

Everything here is drawn from a generator of its own (``f"{seed}:access"``) once the projects
exist, so the rest of an account is the same with access records as without them. Records are
stored in the exact JSON shapes of Neon's spec: ``MemberWithUser`` (``{"member", "user"}``),
``OrgApiKeysListResponseItem``, ``ProjectPermission``, ``VPCEndpointWithRegion`` and
``VPCEndpoint``.

Who may read what (the route handlers in :mod:`~neon_simulator.routes` ask :meth:`org_role`):

- members and project shares: any key that sees the organization or project;
- API keys and VPC endpoints: organization admins only; the personal key's user is an admin of the
  organizations with an even index and a plain ``member`` of the others (403 otherwise). An
  organization API key acts with admin rights in its own organization;
- VPC endpoints, of an organization or a project: organizations on a paid plan only (403 for free
  ones); the first paid organization, and every other even one, uses private networking.

Changes (:meth:`grant_project_access`, :meth:`revoke_project_access`) leave no signal: no action of
the spec's ``OperationAction`` covers project access, and a project's ``updated_at`` stays as it
was, as far as Neon documents. A client learns of them only by reading the shares again.
"""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING

from .records import _snapshot
from .reference import _ID_ALPHABET
from .timestamps import _DAY, parse_ts, ts

if TYPE_CHECKING:
    from .records import _Project

# fmt: off
_FIRST_NAMES = (
    "alan", "barbara", "claude", "dorothy", "edsger", "frances", "grace", "hedy", "john", "katherine",
    "linus", "margaret", "niklaus", "radia", "shafi", "tim", "ivan", "donald", "leslie", "ken",
)
_LAST_NAMES = (
    "turing", "liskov", "shannon", "vaughan", "dijkstra", "allen", "hopper", "lamarr", "backus",
    "johnson", "torvalds", "hamilton", "wirth", "perlman", "goldwasser", "berners-lee", "knuth",
    "lamport", "thompson", "ritchie",
)
_KEY_NAMES = (
    "ci-deploy", "terraform", "grafana-exporter", "backup-job", "preview-branches", "dbt-cloud",
    "neon-elt", "migration-bot", "vercel-integration", "on-call-scripts",
)
_PARTNERS = ("contractor-hub", "agency-north", "auditors-llp", "freelance-mail", "partner-corp")
# fmt: on
#: Member roles the generator hands out besides the admins (Neon's ``MemberRole``).
_OTHER_ROLES = ("member", "member", "member", "editor", "viewer", "collaborator")
#: Addresses keys are used from (documentation ranges, RFC 5737).
_KEY_ADDRESSES = ("192.0.2.", "198.51.100.", "203.0.113.")


class AccessControl:
    """Members, API keys, shares and VPC endpoints of :class:`~neon_simulator.account.Account`,
    mixed into it: generation, the reads tests and the server use, and changes."""

    def _init_access(self) -> None:
        self._members: dict[str, list[dict]] = {}  # org id -> MemberWithUser, in joining order
        self._org_api_keys: dict[str, list[dict]] = {}  # org id -> OrgApiKeysListResponseItem
        self._key_tokens: dict[int, str] = {}  # API key id -> its token (served with serve_secrets)
        self._permissions: dict[str, list[dict]] = {}  # project id -> ProjectPermission
        self._org_vpc: dict[str, list[dict]] = {}  # org id -> VPCEndpointWithRegion
        self._project_vpc: dict[str, list[dict]] = {}  # project id -> VPCEndpoint (restrictions)
        self._access_rng = random.Random(f"{self.spec.seed}:access:changes")

    # ---------------------------------------------------------------------------------- generation

    def _generate_access(self) -> None:
        rng = random.Random(f"{self.spec.seed}:access")
        self._next_key_id = 165000 + rng.randrange(1000)
        self._shares_made: dict[str | None, int] = {}  # per organization, while generating
        for index, org in enumerate(self._orgs):
            self._add_people(org, index, rng)
            self._add_api_keys(org, rng)
            if org["id"] in self._plan_orgs and index % 2 == 0:
                self._add_vpc_endpoints(org, rng)
        for pid in sorted(self._projects):
            project = self._projects[pid]
            self._add_shares(project, rng)
            self._add_connection_settings(project, rng)

    def _add_people(self, org: dict, index: int, rng: random.Random) -> None:
        """The personal key's user first, then colleagues: some admins (the first organization
        always has more than three), one without MFA, one deactivated, the rest in other roles."""
        created = parse_ts(org["created_at"])
        domain = org["name"].lower().replace(" ", "-") + ".example"
        user = self._user
        people = [(user["id"], user["email"], "admin" if index % 2 == 0 else "member", True, False)]
        admins = 3 if index == 0 else rng.randint(1, 2)  # colleagues; the user makes four in the first
        count = admins + 3 + rng.randint(0, min(20, len(self._order.get(org["id"], [])) // 2))
        names = rng.sample([(f, n) for f in _FIRST_NAMES for n in _LAST_NAMES], count)
        for n, (first, last) in enumerate(names):
            role = "admin" if n < admins else rng.choice(_OTHER_ROLES)
            has_mfa = bool(org.get("require_mfa")) or (n != admins and rng.random() < 0.7)
            deactivated = n == admins + 1 or (n > admins + 1 and rng.random() < 0.08)
            user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            people.append((user_id, f"{first}.{last}@{domain}", role, has_mfa, deactivated))
        members = []
        for user_id, email, role, has_mfa, deactivated in people:
            joined = created + rng.randrange(max(1, self._now - created - _DAY))
            record = {
                "member": {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "user_id": user_id,
                    "org_id": org["id"],
                    "role": role,
                    "joined_at": ts(joined),
                },
                "user": {"email": email, "has_mfa": has_mfa},
            }
            if deactivated:
                record["user"]["deactivated_at"] = ts(joined + rng.randrange(max(1, self._now - joined)))
            members.append(record)
        self._members[org["id"]] = members

    def _add_api_keys(self, org: dict, rng: random.Random) -> None:
        """Keys made by the organization's admins: the first never used, the second unused for
        months, a few scoped to one project, the rest in use this week."""
        admins = [m for m in self._members[org["id"]] if m["member"]["role"] == "admin"]
        projects = [pid for _, pid in self._order.get(org["id"], [])]
        created_org = parse_ts(org["created_at"])
        keys = []
        for n, name in enumerate(rng.sample(_KEY_NAMES, 2 + rng.randint(0, 4))):
            self._next_key_id += rng.randint(1, 40)
            creator = rng.choice(admins)
            created = created_org + rng.randrange(max(1, self._now - created_org - 2 * _DAY))
            key = {
                "id": self._next_key_id,
                "name": name,
                "created_at": ts(created),
                "created_by": {
                    "id": creator["member"]["user_id"],
                    "name": creator["user"]["email"].split("@")[0].replace(".", " ").title(),
                    "image": f"https://avatars.example.com/u/{creator['member']['user_id'][:8]}.png",
                },
                "last_used_from_addr": "",
            }
            if n == 1:
                used = max(created, self._now - rng.randint(100, 400) * _DAY)
            elif n > 1:
                used = max(created, self._now - rng.randrange(7 * _DAY))
            if n >= 1:
                key["last_used_at"] = ts(used)
                key["last_used_from_addr"] = rng.choice(_KEY_ADDRESSES) + str(rng.randint(1, 254))
            if projects and (n == 2 or (n > 2 and rng.random() < 0.25)):
                key["project_id"] = rng.choice(projects)
            keys.append(key)
            digest = rng.getrandbits(256).to_bytes(32, "big") * 2
            self._key_tokens[key["id"]] = "".join(_ID_ALPHABET[b % len(_ID_ALPHABET)] for b in digest)
        self._org_api_keys[org["id"]] = keys

    def _add_vpc_endpoints(self, org: dict, rng: random.Random) -> None:
        regions = sorted(
            {self._projects[pid].item["region_id"] for _, pid in self._order.get(org["id"], [])}
            | {"aws-us-east-2"}
        )
        regions = [r for r in regions if r.startswith("aws-")]
        self._org_vpc[org["id"]] = [
            {
                "vpc_endpoint_id": "vpce-" + "".join(rng.choices("0123456789abcdef", k=17)),
                "label": label,
                "region_id": rng.choice(regions),
            }
            for label in ("prod-vpc", "analytics-vpc")[: rng.randint(1, 2)]
        ]

    def _add_shares(self, project: _Project, rng: random.Random) -> None:
        """0 to 3 shares, to colleagues or to addresses outside the organization; some revoked.
        An organization's first share goes outside it and its second is revoked."""
        created = parse_ts(project.item["created_at"])
        colleagues = [
            m["user"]["email"]
            for m in self._members.get(project.scope or "", [])
            if m["member"]["user_id"] != self._user["id"]
        ]
        made = self._shares_made.get(project.scope, 0)
        shares = []
        for n in range(made, made + rng.choices((0, 1, 2, 3), (45, 25, 18, 12))[0]):
            if n != 0 and colleagues and rng.random() < 0.65:
                email = rng.choice(colleagues)
            else:
                email = f"{rng.choice(_FIRST_NAMES)}@{rng.choice(_PARTNERS)}.example"
            if any(s["granted_to_email"] == email for s in shares):
                continue
            granted = created + rng.randrange(max(1, self._now - created))
            share = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "granted_to_email": email,
                "granted_at": ts(granted),
            }
            if n == 1 or (n > 1 and rng.random() < 0.15):
                share["revoked_at"] = ts(granted + rng.randrange(max(1, self._now - granted)))
            shares.append(share)
        self._shares_made[project.scope] = made + len(shares)
        self._permissions[project.item["id"]] = shares

    def _add_connection_settings(self, project: _Project, rng: random.Random) -> None:
        """What the review reads off ``settings``: blocked public or VPC connections, IP allow lists
        that cover protected branches only, audit logging and HIPAA; and VPC restrictions."""
        item = project.item
        paid = project.scope in self._plan_orgs
        settings = dict(item.get("settings", {}))
        vpc = self._org_vpc.get(project.scope or "")
        if vpc and rng.random() < 0.4:
            endpoint = rng.choice(vpc)
            self._project_vpc[item["id"]] = [
                {"vpc_endpoint_id": endpoint["vpc_endpoint_id"], "label": endpoint["label"]}
            ]
            settings["block_public_connections"] = rng.random() < 0.7
        elif paid and rng.random() < 0.1:
            settings["block_public_connections"] = True
        if rng.random() < 0.05:
            settings["block_vpc_connections"] = True
        if "allowed_ips" not in settings and paid and rng.random() < 0.25:
            settings["allowed_ips"] = {
                "ips": ["198.51.100.0/24", "192.0.2.17"],
                "protected_branches_only": False,
            }
        if "allowed_ips" in settings and rng.random() < 0.4:
            settings["allowed_ips"] = {**settings["allowed_ips"], "protected_branches_only": True}
        if paid and rng.random() < 0.3:
            settings["audit_log_level"] = rng.choice(("base", "extended", "full"))
        if "hipaa_enabled_at" in item:
            settings["hipaa"] = True
        if settings:
            item["settings"] = settings

    # ---------------------------------------------------------------------------------- reads

    def org_role(self, org_id: str) -> str | None:
        """The personal key's user's role in ``org_id`` (None if not a member)."""
        with self.lock:
            for record in self._members.get(org_id, []):
                if record["member"]["user_id"] == self._user["id"]:
                    return record["member"]["role"]
            return None

    def members(self, org_id: str) -> list[dict]:
        """``MemberWithUser`` records of an organization, in joining order."""
        with self.lock:
            return _snapshot(self._members.get(org_id, []))

    def org_api_keys(self, org_id: str) -> list[dict]:
        """``OrgApiKeysListResponseItem`` records of an organization, as served (no tokens)."""
        with self.lock:
            return _snapshot(self._org_api_keys.get(org_id, []))

    def project_permissions(self, project_id: str) -> list[dict]:
        """``ProjectPermission`` records of a project, revoked ones included."""
        with self.lock:
            self._project(project_id)
            return _snapshot(self._permissions.get(project_id, []))

    def org_vpc_endpoints(self, org_id: str) -> list[dict]:
        """``VPCEndpointWithRegion`` records: the organization's VPC endpoints in every region."""
        with self.lock:
            return _snapshot(self._org_vpc.get(org_id, []))

    def project_vpc_endpoints(self, project_id: str) -> list[dict]:
        """``VPCEndpoint`` records: the VPC endpoints a project is restricted to."""
        with self.lock:
            self._project(project_id)
            return _snapshot(self._project_vpc.get(project_id, []))

    def served_emails(self) -> set[str]:
        """Every email address the server can serve: members' and the shares'."""
        with self.lock:
            return {m["user"]["email"] for ms in self._members.values() for m in ms} | {
                p["granted_to_email"] for ps in self._permissions.values() for p in ps
            }

    def _served_key_tokens(self) -> set[str]:
        """API key tokens, which only ``serve_secrets`` puts in the listing (Neon sends none)."""
        if not self.spec.serve_secrets:
            return set()
        return {self._key_tokens[k["id"]] for keys in self._org_api_keys.values() for k in keys}

    def _api_keys_served(self, org_id: str) -> list[dict]:
        keys = self._org_api_keys.get(org_id, [])
        if not self.spec.serve_secrets:
            return keys
        return [{**key, "key": self._key_tokens[key["id"]]} for key in keys]

    # ---------------------------------------------------------------------------------- changes

    def grant_project_access(self, project_id: str, email: str) -> dict:
        """Share a project with ``email`` at the account clock; returns a copy of the permission.
        No operation is recorded and the project's ``updated_at`` stays (see the module)."""
        with self.lock:
            self._project(project_id)
            shares = self._permissions.setdefault(project_id, [])
            if any(s["granted_to_email"] == email and "revoked_at" not in s for s in shares):
                raise ValueError(f"project {project_id} is already shared with that address")
            share = {
                "id": str(uuid.UUID(int=self._access_rng.getrandbits(128), version=4)),
                "granted_to_email": email,
                "granted_at": ts(self._now),
            }
            shares.append(share)
            return _snapshot(share)

    def revoke_project_access(self, project_id: str, permission_id: str) -> dict:
        """Revoke a share at the account clock; the listing keeps it, with ``revoked_at``."""
        with self.lock:
            self._project(project_id)
            for share in self._permissions.get(project_id, []):
                if share["id"] == permission_id and "revoked_at" not in share:
                    share["revoked_at"] = ts(self._now)
                    return _snapshot(share)
            raise KeyError(f"no active permission {permission_id} on project {project_id}")
