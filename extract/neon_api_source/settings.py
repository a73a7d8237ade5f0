"""Constants for the Neon API source: endpoints, page sizes, rate limits and the shape of each table.

Every number here comes from Neon's OpenAPI spec (extract/neon_simulator/neon-openapi-v2.yaml) or Neon's
documented limits; tests check the field lists against the spec so an API change shows up as a
failing test instead of a silently missing column.
"""

DEFAULT_BASE_URL = "https://console.neon.tech/api/v2"

# Largest page each list endpoint accepts (spec: `limit` maximum).
PROJECTS_PAGE_LIMIT = 400
BRANCHES_PAGE_LIMIT = 10_000
OPERATIONS_PAGE_LIMIT = 1_000
CONSUMPTION_PAGE_LIMIT = 100

# Neon's documented limits: 700 requests per minute per account, bursts up to 40 requests per
# second per route; the consumption history endpoint allows about 30 requests per minute.
REQUESTS_PER_MINUTE = 700
ACCOUNT_BURST = 40
ROUTE_REQUESTS_PER_SECOND = 40
ROUTE_BURST = 40
CONSUMPTION_REQUESTS_PER_MINUTE = 30
CONSUMPTION_BURST = 5

# The client-side limiter keeps a margin that delays on the way to Neon (threads, the GIL, the
# network) cannot eat: requests sent on schedule may arrive bunched, against a bucket Neon has
# already emptied. It runs slightly below the documented rate and bursts at most half as deep
# (20 of 40: about 1.7 s of arrivals may bunch before Neon's bucket runs dry). On one route it
# sends at most three quarters of Neon's 40 per second, with a burst of one eighth of it (5).
RATE_SAFETY = 0.97
BURST_SHARE = 0.5
ROUTE_RATE_SHARE = 0.75
ROUTE_BURST_SHARE = 0.125

# The limiter adapts to the rate Neon actually grants (other tools draw on the same account):
# every 429 not already answered by a cut halves the rate, for the whole account (for the
# consumption route, its own limit); each success adds back a little, so that requests sent at
# full speed climb 1/120 of the ceiling per second, from half the ceiling back to it in a minute,
# but one success never adds more than 2% (a slow limit's successes are seconds apart). The
# ceiling is requests_per_minute times budget_share; the rate never falls below
# MIN_REQUESTS_PER_MINUTE.
RATE_DECREASE = 0.5
RATE_INCREASE_SECONDS = 120
RATE_INCREASE_CAP = 0.02
MIN_REQUESTS_PER_MINUTE = 6
# The share of the account's budget a run takes on purpose (0 < share <= 1), leaving the rest to
# CI jobs, Terraform and the console.
BUDGET_SHARE = 1.0

# Concurrent requests in flight. Neon's rate limit, not this number, bounds a large account;
# it matters for latency-bound small accounts.
CONCURRENCY = 16

# Retries for 5xx, timeouts, dropped connections and corrupt bodies: attempts per request.
MAX_ATTEMPTS = 7
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
# A server's error text in a message: cut to this many characters (a proxy's 5 MB page is no line).
ERROR_TEXT_CHARS = 300
# A read timeout bounds the wait for each byte only: a server that trickles its answer would hold a
# request forever. A request ends this long after it was sent (a retry then, as for a timeout) ...
REQUEST_DEADLINE_SECONDS = 300.0
# ... and the extract's requests end this long after the run started, so that a run that hangs
# fails (exit 1) instead of making every later scheduled run skip (exit 3) unseen.
RUN_DEADLINE_SECONDS = 6 * 3600.0
# A 429 is retried without using up those attempts: the run slows down instead. A request still
# refused this long after its first 429 fails the run.
MAX_THROTTLE_WAIT_SECONDS = 600.0

# Incremental windows.
OPERATIONS_LOOKBACK_HOURS = 24  # operations change status for a while after they are created
OPERATIONS_RETENTION_DAYS = 180  # Neon keeps six months of operations; older gaps cannot be read back
CONSUMPTION_HISTORY_DAYS = 60  # daily granularity reaches back at most 60 days
CONSUMPTION_LOOKBACK_DAYS = 2  # Neon revises consumption for about a day
# Hourly consumption (the `consumption_hourly` table): granularity=hourly reaches back at most 168
# hours (older answers 406); the metrics whose exact price needs hours (the extra-branch allowance
# is per project and hour); consumption is final within about an hour, so two are re-read.
HOURLY_CONSUMPTION_HOURS = 168
HOURLY_CONSUMPTION_METRICS = ("extra_branches_month",)
HOURLY_CONSUMPTION_LOOKBACK_HOURS = 2
CONSUMPTION_METRICS = (
    "compute_unit_seconds",
    "root_branch_bytes_month",
    "child_branch_bytes_month",
    "instant_restore_bytes_month",
    "public_network_transfer_bytes",
    "private_network_transfer_bytes",
    "extra_branches_month",
    "snapshot_storage_bytes_month",
)

# Branch consumption (GET /consumption_history/v2/branches): the same days and look-back as the
# project consumption, 1 to 100 projects a request, up to 1,000 branches a page, and only the six
# metrics the spec allows there (not extra_branches_month nor snapshot_storage_bytes_month).
BRANCH_CONSUMPTION_PROJECTS_PER_REQUEST = 100
BRANCH_CONSUMPTION_PAGE_LIMIT = 1_000
BRANCH_CONSUMPTION_METRICS = CONSUMPTION_METRICS[:6]
# The consumption routes, each held to CONSUMPTION_REQUESTS_PER_MINUTE by the client's limiter.
CONSUMPTION_PROJECTS_ROUTE = "/consumption_history/v2/projects"
CONSUMPTION_BRANCHES_ROUTE = "/consumption_history/v2/branches"
CONSUMPTION_ROUTES = (CONSUMPTION_PROJECTS_ROUTE, CONSUMPTION_BRANCHES_ROUTE)

# Incremental extract (incremental.py). After the first run, a project's branch and compute
# listings, and a branch's databases and roles, are re-read only when Neon signals a change, and
# every project is re-read in full at least once every FULL_REFRESH_DAYS, spread over the runs.
# 7 days: a weekly re-confirmation catches what Neon does not signal (a branch renamed without an
# operation) within a week, for about a seventh of a full run's per-branch requests each day.
FULL_REFRESH_DAYS = 7
# Neon's clock and ours may disagree: an operation up to this long before our last reading still
# counts as news (re-reading once too often is cheap; missing a change is not).
CLOCK_SKEW_SECONDS = 300
# Project listing fields that move when something happens in a project. A counter that goes down
# was reset by a new billing period: that alone is not a change.
PROJECT_SIGNAL_FIELDS = ("updated_at", "compute_last_active_at")
PROJECT_SIGNAL_COUNTERS = ("active_time", "cpu_used_sec")
# What each operation action (the spec's OperationAction) can change in what this source loads:
# "listings" = the project's branches and computes; "contents" = also the databases and roles of
# the branch it names (of every branch when it names none). Sources: Neon's "System operations"
# page and the spec. An action not listed here (a new one) is treated as "contents".
LISTINGS, CONTENTS, NOTHING = "listings", "contents", "nothing"
OPERATION_EFFECTS = {
    "create_compute": LISTINGS,
    "create_timeline": CONTENTS,  # a project's root branch, with its first database and role
    "create_branch": CONTENTS,  # a branch, with copies of its parent's databases and roles
    "start_compute": LISTINGS,
    "start_reserved_compute": LISTINGS,
    "suspend_compute": LISTINGS,
    "apply_config": CONTENTS,  # databases and roles created, changed or deleted; compute settings
    "sync_dbs_and_roles_from_compute": CONTENTS,  # databases and roles changed in SQL
    "apply_schema_from_branch": CONTENTS,
    "import_data": CONTENTS,
    "update_catalog": CONTENTS,
    "delete_timeline": LISTINGS,  # a branch deleted
    "detach_parent_branch": LISTINGS,  # a branch's parent changes
    "timeline_archive": LISTINGS,  # a branch's state
    "timeline_unarchive": LISTINGS,
    "timeline_mark_invisible": LISTINGS,
    "timeline_update_protected_config": LISTINGS,  # a branch's `protected`
    "promote_replica": LISTINGS,  # a read replica becomes read-write
    "prewarm_replica": LISTINGS,
    "finalize_migration": LISTINGS,  # computes move with their project
    "mark_migration_prepared": LISTINGS,
    "epc_sync": LISTINGS,  # new in the live spec (2026-08), undocumented: computes' state, we take it
    # Storage and control-plane housekeeping: nothing this source loads changes.
    "check_availability": NOTHING,
    "tenant_ignore": NOTHING,
    "tenant_attach": NOTHING,
    "tenant_detach": NOTHING,
    "tenant_reattach": NOTHING,
    "replace_safekeeper": NOTHING,
    "disable_maintenance": NOTHING,
    "apply_storage_config": NOTHING,  # project settings such as history retention: in the project listing
    "prepare_secondary_pageserver": NOTHING,
    "switch_pageserver": NOTHING,
    "set_storage_non_dirty": NOTHING,
    "swap_binding_id": NOTHING,
    "tenant_attach_safekeepers": NOTHING,  # new in the live spec (2026-08): storage housekeeping
    "tenant_detach_safekeepers": NOTHING,
}

# Keys that carry credentials. They are removed from every record, at any depth, before anything
# is written anywhere.
CREDENTIAL_KEYS = frozenset(
    {"password", "connection_uri", "connection_uris", "connection_string", "token", "secret"}
)

# Table shapes. Each entity is split in two: stable fields, versioned with dlt's scd2 strategy so
# that analysts see when something was created, changed or deleted, and volatile counters, kept in
# a daily snapshot table so that usage ticking over does not mint a new version on every run.
# Types are dlt data types; `json` keeps free-form maps as one JSON column.
PROJECT_COLUMNS = {
    "id": "text",
    "name": "text",
    "org_id": "text",
    "org_name": "text",
    "platform_id": "text",
    "region_id": "text",
    "pg_version": "bigint",
    "provisioner": "text",
    "proxy_host": "text",
    "branch_logical_size_limit": "bigint",
    "branch_logical_size_limit_bytes": "bigint",
    "store_passwords": "bool",
    "creation_source": "text",
    "created_at": "timestamp",
    "owner_id": "text",
    "history_retention_seconds": "bigint",
    "maintenance_starts_at": "timestamp",
    "hipaa_enabled_at": "timestamp",
    "settings": "json",
    "default_endpoint_settings": "json",
}
PROJECT_SNAPSHOT_COLUMNS = {
    "active_time": "bigint",
    "cpu_used_sec": "bigint",
    "synthetic_storage_size": "bigint",
    "compute_last_active_at": "timestamp",
    "updated_at": "timestamp",
}

BRANCH_COLUMNS = {
    "id": "text",
    "project_id": "text",
    "parent_id": "text",
    "parent_lsn": "text",
    "parent_timestamp": "timestamp",
    "name": "text",
    "current_state": "text",
    "state_changed_at": "timestamp",
    "creation_source": "text",
    "default": "bool",
    "protected": "bool",
    "created_at": "timestamp",
    "expires_at": "timestamp",
    "ttl_interval_seconds": "bigint",
    "last_reset_at": "timestamp",
    "init_source": "text",
    "restore_status": "text",
    "restored_from": "text",
    "restored_as": "text",
    "created_by": "json",
}
BRANCH_SNAPSHOT_COLUMNS = {
    "logical_size": "bigint",
    "compute_time_seconds": "bigint",
    "active_time_seconds": "bigint",
    "cpu_used_sec": "bigint",
    "written_data_bytes": "bigint",
    "data_transfer_bytes": "bigint",
    "pending_state": "text",
    "updated_at": "timestamp",
    # actions Neon restricts on the branch now, and why (`[{name, reason}]`): they come and go
    "restricted_actions": "json",
}
# Deleted branches still restorable (`GET .../branches?include_deleted=true`, read with the branch
# listing itself: one request, no more): a few fields of the branch as it was, and its `recovery`.
DELETED_BRANCH_COLUMNS = {
    "id": "text",
    "project_id": "text",
    "parent_id": "text",
    "name": "text",
    "created_at": "timestamp",
    "expires_at": "timestamp",
}
BRANCH_RECOVERY_COLUMNS = {
    "deleted_at": "timestamp",
    "recoverable_until": "timestamp",
    "deletion_method": "text",
}

ENDPOINT_COLUMNS = {
    "id": "text",
    "project_id": "text",
    "branch_id": "text",
    "region_id": "text",
    "name": "text",
    "host": "text",
    "type": "text",
    "autoscaling_limit_min_cu": "double",
    "autoscaling_limit_max_cu": "double",
    "suspend_timeout_seconds": "bigint",
    "provisioner": "text",
    "pooler_enabled": "bool",
    "pooler_mode": "text",
    "disabled": "bool",
    "passwordless_access": "bool",
    "creation_source": "text",
    "created_at": "timestamp",
    "compute_release_version": "text",
    "settings": "json",
}
ENDPOINT_SNAPSHOT_COLUMNS = {
    "current_state": "text",
    "pending_state": "text",
    "last_active": "timestamp",
    "started_at": "timestamp",
    "suspended_at": "timestamp",
    "updated_at": "timestamp",
}

ORGANIZATION_COLUMNS = {
    "id": "text",
    "name": "text",
    "handle": "text",
    "plan": "text",
    "managed_by": "text",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "allow_hipaa_projects": "bool",
    "require_mfa": "bool",
}
REGION_COLUMNS = {
    "region_id": "text",
    "name": "text",
    "default": "bool",
    "geo_lat": "text",
    "geo_long": "text",
}
DATABASE_COLUMNS = {
    "id": "bigint",
    "branch_id": "text",
    "name": "text",
    "owner_name": "text",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}
ROLE_COLUMNS = {
    "branch_id": "text",
    "name": "text",
    "protected": "bool",
    "authentication_method": "text",
    "created_at": "timestamp",
    "updated_at": "timestamp",
}
OPERATION_COLUMNS = {
    "id": "text",
    "project_id": "text",
    "branch_id": "text",
    "endpoint_id": "text",
    "action": "text",
    "status": "text",
    "error": "text",
    "failures_count": "bigint",
    "retry_at": "timestamp",
    "created_at": "timestamp",
    "updated_at": "timestamp",
    "total_duration_ms": "bigint",
}

# Which spec schema each table's API fields come from (checked by tests/test_raw_schema.py).
SPEC_SCHEMAS = {
    "organizations": ("Organization", ORGANIZATION_COLUMNS),
    "regions": ("RegionResponse", REGION_COLUMNS),
    "projects": ("ProjectListItem", {**PROJECT_COLUMNS, **PROJECT_SNAPSHOT_COLUMNS}),
    "project_branches": ("Branch", {**BRANCH_COLUMNS, **BRANCH_SNAPSHOT_COLUMNS}),
    "endpoints": ("Endpoint", {**ENDPOINT_COLUMNS, **ENDPOINT_SNAPSHOT_COLUMNS}),
    "databases": ("Database", DATABASE_COLUMNS),
    "roles": ("Role", ROLE_COLUMNS),
    "operations": ("Operation", OPERATION_COLUMNS),
}


# ------------------------------------------------------------------- who can reach the estate (access.py)
# Members, organization API keys and VPC endpoints are read per organization on every run (a few
# requests); project shares and VPC restrictions per project, with the project's full reading
# (incremental.py). Field lists come from the spec's Member, MemberUserInfo,
# OrgApiKeysListResponseItem, ProjectPermission, VPCEndpointWithRegion and VPCEndpoint.
MEMBERS_PAGE_LIMIT = 500
# Routes whose body is a bare JSON array, as the spec declares it; the client takes an array from
# these routes only.
API_KEYS_ROUTE = "/organizations/{org_id}/api_keys"
ARRAY_BODY_ROUTES = frozenset({API_KEYS_ROUTE})
MEMBER_COLUMNS = {
    "id": "text",
    "user_id": "text",
    "org_id": "text",
    "role": "text",
    "joined_at": "timestamp",
}
MEMBER_USER_COLUMNS = {
    "email": "text",
    "has_mfa": "bool",
    "deactivated_at": "timestamp",
}
# `created_by` (the creator's id, name and avatar) lands as `created_by_user_id` only: the id
# joins the members, whose email names the creator; a second copy of a person's name would be
# personal data the review does not need. A key's token is never a column (the list has none).
API_KEY_COLUMNS = {
    "id": "bigint",
    "name": "text",
    "created_at": "timestamp",
    "last_used_at": "timestamp",
    "last_used_from_addr": "text",
    "project_id": "text",
}
PERMISSION_COLUMNS = {
    "id": "text",
    "granted_to_email": "text",
    "granted_at": "timestamp",
    "revoked_at": "timestamp",
}
VPC_ENDPOINT_COLUMNS = {
    "vpc_endpoint_id": "text",
    "label": "text",
    "region_id": "text",
}
PROJECT_VPC_ENDPOINT_COLUMNS = {
    "vpc_endpoint_id": "text",
    "label": "text",
}
# Per-project permissions (the live spec of 2026-08: `GET /projects/{project_id}/members`, 500 a
# page), read for every organization's project on every run: they replace shares as the way people
# reach a project, and Neon signals no change to them. The member's display name is not loaded
# (the email names them, as for organization members).
PROJECT_MEMBERS_ROUTE = "/projects/{project_id}/members"
PROJECT_MEMBERS_PAGE_LIMIT = 500
PROJECT_MEMBER_COLUMNS = {
    "member_id": "text",
    "user_id": "text",
    "email": "text",
    "org_role": "text",
    "project_role": "text",
    "org_default_project_permission": "text",
    "explicit_project_permission": "text",
    "effective_project_permission": "text",
    "grant_source": "text",
}
# Neon's snapshots (`GET /projects/{project_id}/snapshots`, one request per project, every run:
# they expire and are taken on schedule with no operation to say so). Loaded as `backup_snapshots`,
# not `snapshots`: three tables here are already `*_snapshots` (daily readings of counters).
# Neon writes their times as plain strings (no date-time format): staging casts them.
SNAPSHOTS_ROUTE = "/projects/{project_id}/snapshots"
SNAPSHOT_COLUMNS = {
    "id": "text",
    "name": "text",
    "lsn": "text",
    "timestamp": "text",
    "source_branch_id": "text",
    "created_at": "text",
    "expires_at": "text",
    "manual": "bool",
    "full_size": "bigint",
    "diff_size": "bigint",
}
# Each root branch's backup schedule (`GET .../branches/{branch_id}/backup_schedule`): Neon takes
# scheduled snapshots of root branches, so child branches are not asked (a request per branch
# would double a run's requests). Read with the project's branch listing, carried with it.
BACKUP_SCHEDULE_ROUTE = "/projects/{project_id}/branches/{branch_id}/backup_schedule"
BACKUP_SCHEDULE_COLUMNS = {"schedule": "json"}  # the `BackupScheduleItem` list; [] when none
# Each organization's monthly spending limit (`GET /organizations/{org_id}/billing/spending_limit`,
# beta, Launch and Scale only; null: no limit), every run.
SPENDING_LIMIT_ROUTE = "/organizations/{org_id}/billing/spending_limit"
SPENDING_LIMIT_COLUMNS = {"spending_limit_cents": "bigint"}
# The only columns that hold email addresses (the spec marks them x-sensitive): with
# `hash_emails` they hold `hmac-sha256:<hex>` of the trimmed, lower-cased address instead.
EMAIL_COLUMNS = {
    "organization_members": "email",
    "project_permissions": "granted_to_email",
    "project_members": "email",
}
EMAIL_HASH_PREFIX = "hmac-sha256:"
EMAIL_HASH_SALT_MIN_LENGTH = 16

SPEC_SCHEMAS.update(
    {
        "organization_members": ("Member", MEMBER_COLUMNS),
        "organization_members (user)": ("MemberUserInfo", MEMBER_USER_COLUMNS),
        "organization_api_keys": ("OrgApiKeysListResponseItem", API_KEY_COLUMNS),
        "project_permissions": ("ProjectPermission", PERMISSION_COLUMNS),
        "organization_vpc_endpoints": ("VPCEndpointWithRegion", VPC_ENDPOINT_COLUMNS),
        "project_vpc_endpoints": ("VPCEndpoint", PROJECT_VPC_ENDPOINT_COLUMNS),
        "project_members": ("ProjectMember", PROJECT_MEMBER_COLUMNS),
        "deleted_branches": ("Branch", DELETED_BRANCH_COLUMNS),
        "deleted_branches (recovery)": ("BranchRecoveryInfo", BRANCH_RECOVERY_COLUMNS),
        "backup_snapshots": ("Snapshot", SNAPSHOT_COLUMNS),
        "backup_schedules": ("BackupSchedule", BACKUP_SCHEDULE_COLUMNS),
        "organization_spending_limits": ("SpendingLimitResponse", SPENDING_LIMIT_COLUMNS),
    }
)
