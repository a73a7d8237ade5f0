"""The source's settings, resolved by dlt, and the one factory of the API client.

`NeonApiSourceConfiguration` is the one list of the source's settings, and the spec of its dlt
source (`@dlt.source(spec=...)`). `resolve()` fills every field, first found wins, from

1. the arguments given to `neon_api_source()` (or the runner's command-line options),
2. the aliases below,
3. the environment in dlt's naming, `SOURCES__NEON_API_SOURCE__<KEY>`,
4. `[sources.neon_api_source]` in `.dlt/secrets.toml` and `.dlt/config.toml`,
5. the defaults, from settings.py.

Settings are resolved once per run: by `neon_api_source()` from its arguments, or by the runner
from its options before it builds the client (it needs the run's statistics and the API's origin
first). `make_client()` builds the client from the result and the client carries it, so a source
given a ready client takes its settings from it (`with_settings` lays any given beside it on top).

Two environment variables are older than dlt's naming and the README documents them: they are
aliases, read here and nowhere else. `resolve()` hands them to dlt as explicit values under the
arguments, so they win over every provider (a key exported for one run beats the one in
secrets.toml) but not over an argument.
"""

from __future__ import annotations

import dataclasses
import os
from urllib.parse import urlsplit

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

from . import settings
from .access import Emails
from .helpers import NeonClient, RetryPolicy, RunStats, SourceConfigError, innermost, is_loopback
from .limiter import RateLimiter, neon_rate_limiter

SECTIONS = ("sources", "neon_api_source")
# field -> the environment variable that gives it before dlt's providers do
ALIASES = {"api_key": "NEON_API_KEY", "base_url": "NEON_API_BASE_URL"}
_SECRETS_FILE_KEY = "[sources.neon_api_source] api_key in .dlt/secrets.toml"


@configspec
class NeonApiSourceConfiguration(BaseConfiguration):
    api_key: TSecretStrValue | None = None
    base_url: str = settings.DEFAULT_BASE_URL
    allow_insecure_http: bool = False
    requests_per_minute: float = settings.REQUESTS_PER_MINUTE
    budget_share: float = settings.BUDGET_SHARE
    concurrency: int = settings.CONCURRENCY
    max_attempts: int = settings.MAX_ATTEMPTS
    backoff_base_seconds: float = settings.BACKOFF_BASE_SECONDS
    backoff_max_seconds: float = settings.BACKOFF_MAX_SECONDS
    connect_timeout_seconds: float = settings.CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = settings.READ_TIMEOUT_SECONDS
    request_deadline_seconds: float = settings.REQUEST_DEADLINE_SECONDS
    run_deadline_seconds: float = settings.RUN_DEADLINE_SECONDS
    max_throttle_wait_seconds: float = settings.MAX_THROTTLE_WAIT_SECONDS
    full_refresh_days: int = settings.FULL_REFRESH_DAYS
    hash_emails: bool = False
    email_hash_salt: TSecretStrValue | None = None
    __key_source__: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    """Where `resolve()` found `api_key`, for messages (a 401 names it); never the key itself."""

    def on_resolved(self) -> None:
        self.base_url = self.base_url.strip().rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise SourceConfigError(f"NEON_API_BASE_URL={self.base_url!r} is not an http(s) URL")
        host = urlsplit(self.base_url).hostname or ""
        if self.base_url.startswith("http://") and not is_loopback(host) and not self.allow_insecure_http:
            raise SourceConfigError(
                f"NEON_API_BASE_URL={self.base_url!r} is plain http to {host}, which would send the API "
                "key unencrypted: use https, or set allow_insecure_http = true under "
                "[sources.neon_api_source] if the network is yours"
            )
        if not 0 < self.budget_share <= 1:
            raise SourceConfigError(
                f"budget_share must be more than 0 and at most 1 (got {self.budget_share:g})"
            )
        for name in ("request_deadline_seconds", "run_deadline_seconds"):
            if not getattr(self, name) > 0:
                raise SourceConfigError(f"{name} must be more than 0 seconds (got {getattr(self, name):g})")
        if self.full_refresh_days < 1:
            raise SourceConfigError(
                f"full_refresh_days must be a whole number of days, 1 or more (got {self.full_refresh_days})"
            )
        Emails(self.hash_emails, self.email_hash_salt)  # hashing needs a long enough salt

    def key_source(self) -> str:
        """Where the key came from, for messages (a 401 names it); never the key itself."""
        return self.__key_source__ or "the configured API key"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base_seconds,
            backoff_max=self.backoff_max_seconds,
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            request_deadline=self.request_deadline_seconds,
            run_deadline=self.run_deadline_seconds,
            max_throttle_wait=self.max_throttle_wait_seconds,
        )


def check_key(key: str, source: str) -> None:
    """Refuse a key that cannot be what Neon issued, before it is sent: a key with whitespace (a
    newline left by an editor or `echo`) or other than ASCII characters would fail in the HTTP
    library, whose message prints the header, key and all. The message never shows the key."""
    if any(c.isspace() for c in key):
        raise SourceConfigError(
            f"the API key from {source} contains whitespace (a trailing newline or space?): "
            "remove it; Neon's keys have none"
        )
    if not key.isascii() or not key.isprintable():
        raise SourceConfigError(
            f"the API key from {source} contains characters other than printable ASCII: "
            "copy it again from the Neon console"
        )


def resolve(**given) -> NeonApiSourceConfiguration:
    """The source's settings as dlt resolves them: the `given` ones first (None: not given), then
    the aliases, then dlt's providers. A setting that is missing, of the wrong type or unreadable
    is a SourceConfigError in one line."""
    unknown = sorted(set(given) - set(NeonApiSourceConfiguration.get_resolvable_fields()))
    if unknown:
        raise TypeError(
            f"neon_api_source() has no setting {', '.join(unknown)}: its settings are the fields of "
            "NeonApiSourceConfiguration (configuration.py)"
        )
    given = {name: value for name, value in given.items() if value is not None}
    aliased = {
        name: os.environ[variable].strip()
        for name, variable in ALIASES.items()
        if name not in given and os.environ.get(variable, "").strip()
    }
    try:
        config = resolve_configuration(
            NeonApiSourceConfiguration(), sections=SECTIONS, explicit_value=aliased | given
        )
    except SourceConfigError:
        raise
    except Exception as exc:
        raise SourceConfigError(describe_error(exc)) from None
    config.__key_source__ = _key_source(given, aliased)
    return config


def _key_source(given: dict, aliased: dict) -> str:
    if "api_key" in given:
        return "the api_key argument"
    if "api_key" in aliased:
        return f"the {ALIASES['api_key']} environment variable"
    if os.environ.get("SOURCES__NEON_API_SOURCE__API_KEY"):
        return "the SOURCES__NEON_API_SOURCE__API_KEY environment variable"
    return _SECRETS_FILE_KEY


def describe_error(exc: BaseException) -> str:
    """A configuration error of dlt's as one line, for the source's settings and for the runner's
    own reads of dlt's secrets: a value of the wrong type names the setting and its value (only
    the source's spec has typed settings); a file dlt cannot parse names the file and what the
    parser says."""
    from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

    if isinstance(exc, ConfigValueCannotBeCoercedException):
        kind = getattr(exc.hint, "__name__", str(exc.hint))
        return f"[sources.neon_api_source] {exc.field_name} = {exc.field_value!r} is not a {kind}"
    cause = innermost(exc)
    text = " ".join(str(cause).split()) or type(cause).__name__
    for name in ("secrets.toml", "config.toml"):
        if name in str(exc) or name in text:
            return f"cannot read .dlt/{name}: {text}"
    return f"cannot read the configuration: {text}"


def make_client(
    config: NeonApiSourceConfiguration,
    *,
    stats: RunStats | None = None,
    key_source: str | None = None,
    limiter: RateLimiter | None = None,
) -> NeonClient:
    """The API client the settings describe: the key, the rate limiter (requests_per_minute 0
    disables it), the budget share and the retry policy. The only place a client is built; tests
    that shape a limiter of their own pass it as `limiter`."""
    if not config.api_key:
        raise SourceConfigError(
            "no Neon API key: set NEON_API_KEY or put api_key under [sources.neon_api_source] in "
            ".dlt/secrets.toml (see README). `make demo` runs the whole pipeline without a key."
        )
    check_key(config.api_key, key_source or config.key_source())
    if not config.is_resolved():  # settings made by hand (a test's): checked as dlt would
        config.resolve()
    return NeonClient(
        config.base_url,
        config.api_key,
        key_source=key_source or config.key_source(),
        limiter=limiter or neon_rate_limiter(config.requests_per_minute, config.budget_share),
        retry=config.retry_policy(),
        stats=stats or RunStats(),
        config=config,
    )


def with_settings(config: NeonApiSourceConfiguration, **given) -> NeonApiSourceConfiguration:
    """Resolved settings with `given` ones on top: the `given` first, then the rest as `config` has
    them (no provider is read again)."""
    known = NeonApiSourceConfiguration.get_resolvable_fields()
    resolved = resolve(**{**{name: getattr(config, name) for name in known}, **given})
    resolved.__key_source__ = config.__key_source__
    return resolved
