"""Reference data of the synthetic accounts: real Neon regions, the metric names of consumption
history, the name and choice tables the generator draws from, and the account sizes
(:class:`AccountSpec` and its :data:`PRESETS`).

Nothing here changes at run time. Names with a leading underscore are package-internal: the
generator's tables.
"""

from __future__ import annotations

import itertools
import random
import string
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from neon_api_source import settings as _extract_settings


class _Choice:
    """A weighted choice among ``(value, weight)`` pairs, with the cumulative weights computed once."""

    def __init__(self, pairs):
        self.values = [v for v, _ in pairs]
        self.cum_weights = list(itertools.accumulate(w for _, w in pairs))

    def __call__(self, rng: random.Random):
        return rng.choices(self.values, cum_weights=self.cum_weights)[0]


# --------------------------------------------------------------------------------------------------
# Reference data
# --------------------------------------------------------------------------------------------------

#: Real Neon regions: id, name, approximate latitude/longitude (strings, as the API serves them),
#: and the relative weight with which generated projects land there. Weight 0 = never used, so at
#: least one listed region always has no projects.
REGIONS: tuple[tuple[str, str, str, str, int], ...] = (
    ("aws-us-east-1", "AWS US East (N. Virginia)", "39.0438", "-77.4874", 20),
    ("aws-us-east-2", "AWS US East (Ohio)", "39.9612", "-82.9988", 30),
    ("aws-us-west-2", "AWS US West (Oregon)", "45.8399", "-119.7006", 10),
    ("aws-eu-central-1", "AWS Europe (Frankfurt)", "50.1109", "8.6821", 15),
    ("aws-eu-west-2", "AWS Europe (London)", "51.5072", "-0.1276", 6),
    ("aws-ap-southeast-1", "AWS Asia Pacific (Singapore)", "1.3521", "103.8198", 6),
    ("aws-ap-southeast-2", "AWS Asia Pacific (Sydney)", "-33.8688", "151.2093", 4),
    ("aws-sa-east-1", "AWS South America (São Paulo)", "-23.5505", "-46.6333", 3),
    ("azure-eastus2", "Azure East US 2 (Virginia)", "36.6681", "-78.3889", 4),
    ("azure-westus3", "Azure West US 3 (Arizona)", "33.4484", "-112.0740", 0),
    ("azure-gwc", "Azure Germany West Central (Frankfurt)", "50.1109", "8.6821", 2),
)
DEFAULT_REGION = "aws-us-east-2"

#: Metric names of ``GET /consumption_history/v2/projects`` and ``.../branches`` (the spec names them
#: in prose only, so they cannot be read from it): the extract's lists, which ask for every metric
#: in the order the spec lists them; the branch route supports only the first six (not
#: ``extra_branches_month`` nor ``snapshot_storage_bytes_month``).
CONSUMPTION_METRICS: tuple[str, ...] = _extract_settings.CONSUMPTION_METRICS
BRANCH_CONSUMPTION_METRICS: tuple[str, ...] = _extract_settings.BRANCH_CONSUMPTION_METRICS
#: Plans whose organizations get branch consumption: the spec's "paid usage-based Launch, Scale,
#: Agent, and Enterprise plans" (project consumption also serves Business).
BRANCH_CONSUMPTION_PLANS = frozenset({"launch", "scale", "agent", "enterprise"})
#: Plans with Private Networking (Neon's plans page: Scale and up), so with private transfer.
PRIVATE_NETWORKING_PLANS = frozenset({"scale", "agent", "enterprise"})

# fmt: off
_ADJECTIVES = (
    "aged", "ancient", "autumn", "billowing", "bitter", "black", "blue", "bold", "broad", "broken",
    "calm", "cold", "cool", "crimson", "curly", "damp", "dark", "dawn", "delicate", "divine", "dry",
    "empty", "falling", "fancy", "flat", "floral", "fragrant", "frosty", "gentle", "green", "hidden",
    "holy", "icy", "jolly", "late", "lingering", "little", "lively", "long", "lucky", "misty",
    "morning", "muddy", "mute", "nameless", "noisy", "odd", "old", "orange", "patient", "plain",
    "polished", "proud", "purple", "quiet", "rapid", "raspy", "red", "restless", "rough", "round",
    "royal", "shiny", "shrill", "shy", "silent", "small", "snowy", "soft", "solitary", "sparkling",
    "spring", "square", "steep", "still", "summer", "super", "sweet", "throbbing", "tight", "tiny",
    "twilight", "wandering", "weathered", "white", "wild", "winter", "wispy", "withered", "yellow",
    "young",
)
_NOUNS = (
    "art", "band", "bar", "base", "bird", "block", "boat", "bonus", "bread", "breeze", "brook", "bush",
    "butterfly", "cake", "cell", "cherry", "cloud", "credit", "darkness", "dawn", "dew", "disk",
    "dream", "dust", "feather", "field", "fire", "firefly", "flower", "fog", "forest", "frog", "frost",
    "glade", "glitter", "grass", "hall", "hat", "haze", "heart", "hill", "king", "lab", "lake", "leaf",
    "limit", "math", "meadow", "mode", "moon", "morning", "mountain", "mouse", "mud", "night", "paper",
    "pine", "poetry", "pond", "queen", "rain", "recipe", "resonance", "rice", "river", "salad", "scene",
    "sea", "shadow", "shape", "silence", "sky", "smoke", "snow", "snowflake", "sound", "star", "sun",
    "sunset", "surf", "term", "thunder", "tooth", "tree", "truth", "union", "unit", "violet", "voice",
    "water", "waterfall", "wave", "wildflower", "wind", "wood",
)
_COMPANIES = (
    "Acme Analytics", "Globex Data", "Initech Labs", "Umbrella Health", "Stark Retail",
    "Wayne Logistics", "Hooli Cloud", "Pied Piper", "Vandelay Imports", "Soylent Foods",
)
_PROJECT_NAMES = (
    "billing-api", "analytics-prod", "web-app", "checkout", "auth-service", "inventory",
    "marketing-site", "data-lake", "mobile-backend", "crm", "reporting", "events-ingest",
    "search-index", "notifications", "payments", "support-desk", "feature-flags", "recommendations",
    "etl-jobs", "partner-portal",
)
_CHILD_BRANCH_NAMES = (
    "dev", "staging", "qa", "test", "preview", "demo", "hotfix", "backup", "migration", "sandbox",
    "perf", "analytics", "load-test",
)
# fmt: on
_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
_DATABASE_NAMES = ("analytics", "app", "inventory", "auth", "events", "billing", "reporting", "audit")
_ROLE_NAMES = ("app_user", "readonly", "analyst", "migrator", "service", "reporting_user", "etl")
_CU_SIZES = (0.25, 0.5, 1, 2, 4, 8)
_PG_VERSIONS = _Choice(((14, 1), (15, 3), (16, 5), (17, 6), (18, 2)))
_CREATION_SOURCES = _Choice((("console", 70), ("neonctl", 12), ("api", 10), ("terraform", 5), ("vercel", 3)))
_OPERATION_ACTIONS = _Choice(
    (
        ("start_compute", 30),
        ("suspend_compute", 28),
        ("apply_config", 10),
        ("create_timeline", 6),
        ("create_branch", 5),
        ("create_compute", 5),
        ("check_availability", 4),
        ("delete_timeline", 3),
        ("apply_storage_config", 2),
        ("timeline_archive", 2),
        ("timeline_unarchive", 1),
        ("switch_pageserver", 1),
        ("prewarm_replica", 1),
        ("sync_dbs_and_roles_from_compute", 1),
        ("update_catalog", 1),
    )
)
_COMPUTE_ACTIONS = frozenset(
    {"start_compute", "suspend_compute", "apply_config", "create_compute", "prewarm_replica"}
)
_FINAL_STATUSES = _Choice((("finished", 90), ("failed", 3), ("skipped", 3), ("cancelled", 2), ("error", 2)))
_SUSPEND_TIMEOUTS = _Choice(((0, 70), (300, 15), (3600, 10), (-1, 5)))
_PROJECT_REGIONS = _Choice([(r[0], r[4]) for r in REGIONS if r[4] > 0])
_APPLICATIONS = ("vercel", "github", "datadog", "opentelemetry")
#: Plans of paid organizations: today's usage-based plans a rate card knows (Business is legacy).
_PLANS = ("scale", "launch")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_PASSWORD_ALPHABET = string.ascii_letters + string.digits
#: Projects created after this moment get Neon's newer 8-character id suffixes.
_NEW_ID_STYLE_SINCE = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp())
#: The spec's earliest allowed consumption ``from`` value.
CONSUMPTION_EPOCH = datetime(2024, 3, 1, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------
# Spec and presets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSpec:
    """Size knobs of a synthetic account. Equal specs generate identical accounts.

    ``orgs=0`` makes a personal account (projects without ``org_id``; there is then no consumption
    history, since that endpoint is per organization). Otherwise every project belongs to one of the
    orgs and the first ``consumption_plan_orgs`` orgs are on a paid plan with
    ``consumption_days`` days of consumption history; the others answer 403 there. Branch-level
    history starts ``branch_consumption_days`` ago (when the account first ingested branch-level
    data; ``None``: as far back as the project history). ``paid_plan`` is every paid organization's
    plan (``None``: each drawn from Scale, Launch and Business).
    ``branches_per_project`` is a mean: the account has exactly
    ``round(projects * branches_per_project)`` branches (at least one per project), spread unevenly,
    in trees up to ``max_branch_depth`` levels below the root. ``read_only_ratio`` is the share of
    branches with a read-write compute that also have read-only replicas. ``now`` (UTC) is the
    account's clock; ``None`` means the current UTC time truncated to the hour, fixed at generation.
    ``serve_secrets`` makes roles carry a ``password``.
    """

    seed: int = 42
    orgs: int = 2
    projects: int = 12
    branches_per_project: float = 3.0
    max_branch_depth: int = 3
    read_only_ratio: float = 0.15
    databases_per_branch: float = 1.5
    roles_per_branch: float = 1.5
    operations_per_project: int = 8
    consumption_days: int = 30
    consumption_plan_orgs: int = 1
    branch_consumption_days: int | None = None
    paid_plan: str | None = None
    now: datetime | None = None
    serve_secrets: bool = False

    def __post_init__(self):
        if self.projects < 0 or self.orgs < 0:
            raise ValueError("projects and orgs must be >= 0")
        if self.branches_per_project < 1:
            raise ValueError("branches_per_project must be >= 1 (every project has a default branch)")
        if not 0 <= self.read_only_ratio <= 1:
            raise ValueError("read_only_ratio must be within 0..1")
        if self.max_branch_depth < 1:
            raise ValueError("max_branch_depth must be >= 1")


#: Named sizes. ``dataclasses.replace(PRESETS["demo"], seed=7)`` derives variants.
PRESETS: dict[str, AccountSpec] = {
    "tiny": AccountSpec(
        orgs=1,
        projects=3,
        branches_per_project=2,
        databases_per_branch=1,
        roles_per_branch=1,
        operations_per_project=3,
        consumption_days=7,
        consumption_plan_orgs=1,
    ),
    "demo": AccountSpec(
        # a seed whose paid organization is on Launch, with a project past its 9 free child
        # branches for days, so the demo's bill shows the branch allowance
        seed=296,
        orgs=2,
        projects=12,
        branches_per_project=3,
        operations_per_project=6,
        # Neon's whole daily reach: the last whole month is in the warehouse, so the demo's bill
        # shows a complete period beside the running one
        consumption_days=60,
        consumption_plan_orgs=1,
        branch_consumption_days=21,  # the branch endpoint is newer: its history starts later
    ),
    "realistic": AccountSpec(
        orgs=3,
        projects=120,
        branches_per_project=3,
        read_only_ratio=0.2,
        operations_per_project=15,
        consumption_days=60,
        consumption_plan_orgs=2,
    ),
    "large": AccountSpec(
        orgs=4,
        projects=5000,
        branches_per_project=5,
        databases_per_branch=1.4,
        roles_per_branch=1.4,
        operations_per_project=6,
        consumption_days=30,
        consumption_plan_orgs=3,
    ),
}
# The large account with every organization on Scale (branch consumption too) and Neon's whole
# daily reach served: the consumption a scheduled extract meets at its largest (`make bench`'s
# memory row).
PRESETS["large-billed"] = replace(
    PRESETS["large"], consumption_plan_orgs=4, consumption_days=60, paid_plan="scale"
)
