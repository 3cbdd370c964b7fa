"""Configuration from the environment (and an optional `.env` file)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from syncs.core.regions import REGIONS

__all__ = ["REGIONS", "Backoff", "Settings", "get_settings"]


@dataclass(frozen=True)
class Backoff:
    """Waits after failures in a row: `base` after the first, doubling after each further one, at most `cap`.

    Settings come in pairs `X_BACKOFF_SECONDS` (base) and `X_BACKOFF_MAX_SECONDS` (cap); `Settings.X_backoff` is
    the pair as a Backoff."""

    base: float
    cap: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (none: 0)."""
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - 1, 30)))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/exact_sync"
    redis_url: str = "redis://127.0.0.1:6379/0"
    exact_client_id: str | None = None
    exact_client_secret: SecretStr | None = None
    exact_base_url: str | None = None
    exact_redirect_uri: str = "http://127.0.0.1:8000/oauth/callback"
    token_encryption_key: SecretStr | None = None

    # Exact refuses a refresh before the last 30 s of an access token's life (it answers 401 and counts an error).
    token_refresh_window_seconds: float = 30.0
    # Seconds into the window (by Exact's clock, estimated: see clock_offset_*) before we refresh.
    token_refresh_margin_seconds: float = 2.0
    token_lock_timeout_seconds: float = 90.0
    # Exact's clock against ours, from the Date header of its answers (syncs/exact/exact_time.py): `status` and
    # `doctor` warn when it is surely further off than this; bounds older than max_age are not used; API answers
    # refresh the shared bounds (Redis) at most every save seconds (token answers always do).
    clock_offset_warn_seconds: float = 5.0
    clock_offset_max_age_seconds: float = 3600.0
    clock_offset_save_seconds: float = 60.0
    # Keep-alive: refresh any active connection whose refresh token is older than this, so an idle connection
    # never reaches Exact's 30-day refresh-token expiry. The beat entry checks every keepalive_check_minutes.
    token_keepalive_days: float = 7.0
    token_keepalive_check_minutes: float = 60.0
    # A keep-alive waits at most this long for an access token's refresh window; further away: next beat run.
    token_keepalive_max_wait_seconds: float = 60.0
    # A backoff pair (see Backoff) for token refreshes that failed (timeout, 5xx).
    token_refresh_backoff_seconds: float = 30.0
    token_refresh_backoff_max_seconds: float = 900.0
    # OAuth connect: how long a pending `state` stays valid (Exact's codes live 3 minutes; consent takes longer).
    oauth_state_ttl_seconds: int = 900
    # How often a run re-reads system/Divisions (new divisions, descriptions, status).
    divisions_check_hours: float = 24.0
    # Passphrase for `connections export/import` (prompted for when unset).
    exact_sync_export_passphrase: SecretStr | None = None
    # Bearer token for `serve`'s admin routes (everything beyond /health, the OAuth callback and invite-based
    # /connect); unset: those routes answer 404. See worker/web_auth.py.
    serve_admin_token: SecretStr | None = None
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    http_timeout_seconds: float = 30.0
    action_retry_seconds: float = 10.0  # first retry of an `exact.action` task (doubling, at most 5 retries)
    default_sync_interval_minutes: int = 15
    beat_tick_seconds: float = 5.0
    celery_visibility_timeout_seconds: int = 3600
    # A backoff pair for the sync task's automatic retries of retriable failures (Celery's, with full jitter).
    task_retry_backoff_seconds: int = 30
    task_retry_backoff_max_seconds: int = 900
    # Rate budget per division (issue 4, see syncs/ratelimit.py): requests in flight at once per division
    # (a Redis semaphore whose slots expire after rate_in_flight_ttl_seconds, so a killed worker frees its slot),
    # the longest wait for budget before the task is handed back, and a margin after each reset for clock skew.
    rate_max_in_flight: int = 1
    rate_in_flight_ttl_seconds: float = 60.0
    rate_max_wait_seconds: float = 120.0
    rate_reset_margin_seconds: float = 0.5
    # Error budget: stop calling an endpoint after this many 400/401/403/404 within an hour (Exact blocks at 10).
    error_budget_per_hour: int = 8
    # Beat defers scheduled syncs of a connection while a division has less than this share of its daily
    # budget left, until the daily reset plus the margin; manual syncs still run (with a warning).
    daily_budget_low_fraction: float = 0.10
    daily_budget_defer_margin_seconds: float = 120.0
    # Exact Online webhooks (syncs/webhooks): the app's webhook secret (deliveries are refused without it), the
    # path `serve` receives them on and its public URL (the subscribe default), how long events of one topic
    # and division are gathered into one sync, and how often beat re-sends events the broker did not take (or
    # whose sync never came).
    exact_webhook_secret: SecretStr | None = None
    webhook_path: str = "/webhooks/exact"
    webhook_callback_url: str | None = None
    # Subscribe every synced topic when a connection is added or reconnected (worker.auto_subscribe).
    webhook_auto_subscribe: bool = False
    webhook_debounce_seconds: float = 30.0
    webhook_sweep_seconds: float = 60.0
    webhook_requeue_after_seconds: float = 900.0
    # Polling adapts (syncs/webhooks/health.py): entities of topics with healthy webhooks are polled only this
    # often; a poll that finds changes no webhook announced puts the topic back on the normal cadence this long.
    webhook_safety_sweep_hours: float = 6.0
    webhook_unhealthy_hours: float = 24.0
    # Retention (syncs/webhooks/retention.py, beat every few hours): settled webhook events and outgoing deliveries
    # older than this many days are deleted.
    webhook_events_retention_days: float = 30.0
    webhook_deliveries_retention_days: float = 30.0
    # Outgoing webhooks (syncs/feed/outgoing.py): the signing secret, the answer timeout, and retries (a backoff
    # pair, with jitter) until max_attempts, after which a delivery is `failed`.
    outgoing_webhook_secret: SecretStr | None = None
    outgoing_webhook_timeout_seconds: float = 10.0
    outgoing_webhook_max_attempts: int = 8
    outgoing_webhook_backoff_seconds: float = 30.0
    outgoing_webhook_backoff_max_seconds: float = 3600.0
    redis_key_prefix: str = "exact-sync"
    celery_queue: str = "exact-sync"
    # The worker also consumes Celery's default queue ("celery"), where a client with no routing of ours sends
    # `send_task('exact.sync_connection', ...)`. Turn off when another Celery app shares this Redis database.
    celery_consume_default_queue: bool = True
    # Prefix of Celery's own Redis keys (queues, unacknowledged messages, results). Empty: Celery's standard
    # names, which a plain client knows. Set it to share one Redis database between installations (clients then
    # need the same prefix in broker and result transport options: `global_keyprefix`).
    celery_key_prefix: str = ""
    # `exact-sync sync --wait` gives up after this long (a worker that is down or a broker that is gone).
    sync_wait_timeout_seconds: float = 900.0
    # The node name `exact-sync worker` runs as and `exact-sync health worker` pings (%h: this host's name).
    worker_node_name: str = "celery@%h"
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
        return value

    @property
    def token_refresh_backoff(self) -> Backoff:
        return Backoff(self.token_refresh_backoff_seconds, self.token_refresh_backoff_max_seconds)

    @property
    def outgoing_webhook_backoff(self) -> Backoff:
        return Backoff(self.outgoing_webhook_backoff_seconds, self.outgoing_webhook_backoff_max_seconds)

    def base_url_for(self, region: str) -> str:
        """The host for OAuth and API calls: EXACT_BASE_URL when set (sandbox, tests), else Exact's regional host."""
        if self.exact_base_url:
            return self.exact_base_url.rstrip("/")
        if region not in REGIONS:
            raise ValueError(f"unknown Exact Online region {region!r}; expected one of {', '.join(REGIONS)}")
        return f"https://start.exactonline.{region}"


def configured(secret: SecretStr | None) -> str | None:
    """A secret's value, or None when it is unset or blank (compose passes an unset variable as ""): an empty HMAC
    key or bearer token would be one anybody can use."""
    value = secret.get_secret_value() if secret is not None else ""
    return value if value.strip() else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
