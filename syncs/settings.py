"""Configuration from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REGIONS = ("nl", "be", "de", "fr", "es", "co.uk", "com")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/exact_sync"
    redis_url: str = "redis://127.0.0.1:6379/0"
    exact_client_id: str | None = None
    exact_client_secret: SecretStr | None = None
    exact_base_url: str | None = None
    exact_redirect_uri: str = "http://127.0.0.1:8765/oauth/callback"
    token_encryption_key: SecretStr | None = None

    # Exact refuses a refresh before the last 30 s of an access token's life (it answers 401 and counts an error).
    token_refresh_window_seconds: float = 30.0
    # Seconds into the window before we refresh, so clock drift between us and Exact never makes us early.
    token_refresh_margin_seconds: float = 2.0
    token_lock_timeout_seconds: float = 90.0
    http_timeout_seconds: float = 30.0
    default_sync_interval_minutes: int = 15
    beat_tick_seconds: float = 5.0
    celery_visibility_timeout_seconds: int = 3600
    redis_key_prefix: str = "exact-sync"
    celery_queue: str = "exact-sync"
    log_level: str = "INFO"
    log_json: bool = False

    def base_url_for(self, region: str) -> str:
        """The host for OAuth and API calls: EXACT_BASE_URL when set (sandbox, tests), else Exact's regional host."""
        if self.exact_base_url:
            return self.exact_base_url.rstrip("/")
        if region not in REGIONS:
            raise ValueError(f"unknown Exact Online region {region!r}; expected one of {', '.join(REGIONS)}")
        return f"https://start.exactonline.{region}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
