"""Constants for the Neon API source: rate limits, retries, incremental windows and what each
operation can change. The listings themselves (routes, envelopes, page sizes, table shapes) are
rows of the listings/ package.

Every number here comes from Neon's OpenAPI spec (extract/neon_simulator/neon-openapi-v2.yaml) or Neon's
documented limits.
"""

DEFAULT_BASE_URL = "https://console.neon.tech/api/v2"

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
BRANCH_CONSUMPTION_METRICS = CONSUMPTION_METRICS[:6]

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
    "epc_sync": LISTINGS,  # the live spec's, undocumented: computes' state, we take it
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
    "tenant_attach_safekeepers": NOTHING,  # the live spec's: storage housekeeping
    "tenant_detach_safekeepers": NOTHING,
}

# Keys that carry credentials. They are removed from every record, at any depth, before anything
# is written anywhere.
CREDENTIAL_KEYS = frozenset(
    {"password", "connection_uri", "connection_uris", "connection_string", "token", "secret"}
)

# Email columns (listings.EMAIL_COLUMNS) hold, with `hash_emails`, `hmac-sha256:<hex>` of the
# trimmed, lower-cased address instead.
EMAIL_HASH_PREFIX = "hmac-sha256:"
EMAIL_HASH_SALT_MIN_LENGTH = 16
