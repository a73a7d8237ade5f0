"""A local simulator of the Neon management API v2, for tests, demos and benchmarks.

It serves a deterministic synthetic account over HTTP with the routes, envelopes, pagination,
field names and errors of Neon's own OpenAPI spec (``neon-openapi-v2.yaml``, shipped here), for every
list endpoint the extractor reads, plus Neon's documented rate limits and injectable faults.

In Python::

    from neon_simulator import PRESETS, Account, Faults, RateLimits, Simulator

    account = Account.generate(PRESETS["demo"])         # or AccountSpec(seed=..., projects=..., ...)
    with Simulator(account, rate_limits=RateLimits.neon(), faults=Faults(error_rate=0.05)) as sim:
        sim.base_url                                    # http://127.0.0.1:<port>/api/v2
        sim.api_key                                     # the account's personal key, napi_...
        ...                                             # point a client at it
        sim.stats.by_route                              # request counts per route template

    account.all_projects(); account.branches(pid)       # exactly what the server serves
    account.tick(hours=6); account.rename_branch(pid, bid, "new-name")   # history

From a shell (``neon-simulator`` is the same)::

    python -m neon_simulator --preset demo --port 8080 [--seed 42] [--projects N] [--orgs N]
        [--latency-ms 50] [--jitter-ms 20] [--rate-limits neon|off] [--rate-share 0.3]
        [--rate-share-after N] [--fault-rate 0.1] [--org-key]
        [--serve-secrets] [--now 2026-05-01T12:00:00Z] [--url-file PATH]

It prints the base URL and the API key, then serves until Ctrl-C or SIGTERM. Fault options can
also come from ``NEON_SIM_*`` variables (see :mod:`neon_simulator.faults`); ``NEON_SIM_NOW`` sets
the clock of every account generated without one, so that several processes generate the same account
(the test suite sets it once per run; a clock far from today leaves a run's recent days empty).

Presets (``PRESETS``; ``dataclasses.replace(PRESETS[name], ...)`` for variants):

========== ====== ======== ========= ==================================================
preset     orgs   projects branches  notes
========== ====== ======== ========= ==================================================
tiny       1      3        6         one paid org
demo       2      12       36        one paid org, one free org (consumption answers 403);
                                     60 days of consumption, branch consumption from 21 days back
realistic  3      120      360       two paid orgs, 60 days of consumption
large      4      5,000    25,000    ~18k computes, ~33k databases and roles, ~30k ops
large-     4      5,000    25,000    large, every org on Scale, 60 days of consumption (the
billed                                 memory bench)
========== ====== ======== ========= ==================================================

Where things are: :mod:`~.reference` (regions, name tables, ``AccountSpec``, ``PRESETS``),
:mod:`~.generate` (an account from a spec), :mod:`~.account` (the store and its reads),
:mod:`~.mutations` (changes and the signals they leave), :mod:`~.access` (members, API keys,
project shares and VPC endpoints, and who may read them), :mod:`~.consumption` (consumption
maths), :mod:`~.server` (HTTP handling), :mod:`~.routes` (route handlers and paging),
:mod:`~.params` (parameter rules read from the spec), :mod:`~.limits` and :mod:`~.faults`.

Behaviour worth knowing (details in :mod:`~.routes`, :mod:`~.account` and :mod:`~.mutations`):

- ``/projects``, ``/projects/{id}/operations`` and ``/consumption_history/v2/projects`` always
  carry ``pagination.cursor``, even on the last and on the empty page: stop on an empty (or
  short) page. ``/projects/{id}/branches`` carries ``pagination.next`` only while more remain and
  returns every branch when no ``limit`` is given. Cursors are opaque keyset cursors.
- With a personal key, ``GET /projects`` on an account with organizations needs ``org_id`` (400
  ``org_id is required, you can find it on your organization settings page``). Organization keys
  get 403 ``not allowed for organization API keys`` on ``/regions``, ``/users/me`` and
  ``/users/me/organizations``, and see only their organization. An ``org_id`` the key may not see
  is a 404, and so is any unknown project, branch or route.
- Consumption: ``from``/``to`` are rounded down to the granularity and timeframes starting in
  ``[from, to)`` are returned, grouped into monthly billing periods. Orgs without a paid plan
  answer 403; ranges beyond 168 hours / 60 days / 1 year (or before 2024-03-01) answer 406.
- Branch consumption (``/consumption_history/v2/branches``): 1 to 100 ``project_ids``, up to
  1,000 branches a page ordered by project and branch id, six metrics; only usage-based plans
  (not Business: 403), from ``AccountSpec.branch_consumption_days`` back. Each timeframe of a
  project is split between its branches alive then (deleted ones too), so they add up to it.
- Rate limits (:class:`RateLimits`) answer 429 without ``Retry-After``, like Neon. The route
  limit is a sliding window (40 in any second), stricter than a bucket. ``RateLimits.neon()
  .scaled(0.3)`` grants 30% of the account's budget (``--rate-share 0.3``), as when other tools
  use the rest (``routes=True``: of the per-route limits too); ``.dropping(after=N, to=0.3)``
  switches to that mid-run (``--rate-share-after N``).
- :data:`VOLATILE_FIELDS` lists the fields that change with time alone (what ``tick`` changes).
- ``AccountSpec(serve_secrets=True)`` makes roles carry passwords; ``account.served_secrets()``
  lists them, so a test can check that none ends up in a warehouse or log.
"""

from .account import Account
from .faults import FAULT_KINDS, Faults
from .limits import RateLimiter, RateLimits
from .mutations import VOLATILE_FIELDS
from .reference import CONSUMPTION_METRICS, PRESETS, AccountSpec
from .routing import ROUTE_TEMPLATES
from .server import Simulator, Stats

__all__ = [
    "CONSUMPTION_METRICS",
    "FAULT_KINDS",
    "PRESETS",
    "ROUTE_TEMPLATES",
    "VOLATILE_FIELDS",
    "Account",
    "AccountSpec",
    "Faults",
    "RateLimiter",
    "RateLimits",
    "Simulator",
    "Stats",
]
