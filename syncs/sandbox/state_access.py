"""The sandbox's access side: OAuth tokens and consent, and the API budget, error limit and injected faults."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import threading

from syncs.core.clock import Clock
from syncs.sandbox.config import Counters, SandboxConfig, bump
from syncs.sandbox.division import DivisionData
from syncs.sandbox.errorlimit import ErrorLimit
from syncs.sandbox.ratelimit import RateLimiter, Verdict, burst_headers, day_window, minute_window
from syncs.sandbox.tokens import Lifetimes, TokenError, TokenStore


class AccessDesk:
    """Mixed into SandboxState (which sets these up); every method holds `lock`."""

    lock: threading.Lock
    exact_clock: Clock
    divisions: dict[int, DivisionData]
    _config: SandboxConfig
    _counters: Counters
    _tokens: TokenStore
    _limiter: RateLimiter
    _errors: ErrorLimit
    _burst_used: dict[int, int]
    _faults: random.Random

    # tokens ------------------------------------------------------------------------------------------------
    def _lifetimes(self) -> Lifetimes:
        c = self._config
        return Lifetimes(c.access_token_lifetime, c.refresh_window, c.refresh_token_lifetime)

    def _keep_tokens(self) -> None:
        """Write the token store to `token_file` (atomically), so a restart strands no stored connection."""
        path = self._config.token_file
        if path:
            temporary = f"{path}.tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(self._tokens.dump(), file)
            os.replace(temporary, path)

    def issue_tokens(self) -> dict[str, str]:
        """A fresh pair for the test user, as if consent had just been given."""
        with self.lock:
            self._counters.tokens_issued += 1
            pair = self._tokens.issue(self.exact_clock.now(), self._lifetimes())
            self._keep_tokens()
            return pair

    def issue_code(self, redirect_uri: str | None = None) -> str:
        with self.lock:
            code = self._tokens.issue_code(self.exact_clock.now(), redirect_uri)
            self._keep_tokens()
            return code

    def authorize(self, client_id: str, redirect_uri: str, response_type: str = "code") -> str | None:
        """GET /api/oauth2/auth for the test user: a code, None when consent is denied. LookupError for an
        unknown client_id, ValueError for a missing redirect_uri or another response_type."""
        with self.lock:
            if client_id != self._config.client_id:
                self._counters.authorize_refused += 1
                raise LookupError(client_id)
            if not redirect_uri or response_type != "code":
                raise ValueError("redirect_uri and response_type=code are required")
            if self._config.deny_consent:
                self._counters.consents_denied += 1
                return None
            self._counters.consents_given += 1
            code = self._tokens.issue_code(self.exact_clock.now(), redirect_uri)
            self._keep_tokens()
            return code

    def revoke_refresh_tokens(self) -> int:
        with self.lock:
            revoked = self._tokens.revoke_refresh_tokens()
            self._keep_tokens()
            return revoked

    def token_request(self, form: dict[str, str], client_id: str | None, client_secret: str | None) -> dict[str, str]:
        """One POST /api/oauth2/token; raises TokenError with Exact's status and body when refused."""
        with self.lock:
            self._counters.token_requests += 1
            try:
                if (client_id, client_secret) != (self._config.client_id, self._config.client_secret):
                    raise TokenError(400, "invalid_client", "Invalid client credentials.", "invalid_client")
                grant = form.get("grant_type")
                now, life = self.exact_clock.now(), self._lifetimes()
                if grant == "refresh_token":
                    pair = self._tokens.refresh(form.get("refresh_token", ""), now, life)
                elif grant == "authorization_code":
                    pair = self._tokens.exchange_code(form.get("code", ""), form.get("redirect_uri"), now, life)
                else:
                    raise TokenError(400, "unsupported_grant_type", f"Unsupported grant_type {grant!r}.")
            except TokenError as refused:
                if refused.counter:
                    setattr(self._counters, refused.counter, getattr(self._counters, refused.counter) + 1)
                raise
            self._counters.tokens_issued += 1
            self._keep_tokens()
            return pair

    def access_status(self, token: str) -> str:
        with self.lock:
            status = self._tokens.access_status(token, self.exact_clock.now(), self._lifetimes())
            if status != "ok":
                self._counters.http_401 += 1
            return status

    # API budget and faults ---------------------------------------------------------------------------------
    def spend(self, division: int) -> Verdict:
        with self.lock:
            c, now = self._config, self.exact_clock.now()
            verdict = self._limiter.take(division, now, c.minutely_limit, c.daily_limit)
            bump(self._counters.api_calls if verdict.allowed else self._counters.http_429, division)
            if not verdict.allowed:
                window = day_window(now) if verdict.which == "daily" else minute_window(now)
                bump(self._counters.http_429_per_window.setdefault(division, {}), window)
            return verdict

    def burst(self, division: int) -> dict[str, str] | None:
        """Headers for an injected 429 while `division` has burst 429s left, else None."""
        with self.lock:
            used = self._burst_used.get(division, 0)
            if used >= self._config.burst_429:
                return None
            self._burst_used[division] = used + 1
            bump(self._counters.burst_429_sent, division)
            if not self._config.burst_429_headers:
                return {}
            return burst_headers(self.exact_clock.now(), self._config.minutely_limit)

    def inject_fault(self, division: int | None = None) -> bool:
        with self.lock:
            if self._config.error_rate > 0 and self._faults.random() < self._config.error_rate:
                self._counters.faults_injected += 1
                if division is not None:
                    bump(self._counters.http_5xx, division)
                return True
            return False

    def record_client_error(self, division: int, endpoint: str | None = None) -> None:
        """Count a 400/401/403/404; with an endpoint it also counts toward Exact's error limit."""
        with self.lock:
            bump(self._counters.http_4xx, division)
            if endpoint is None:
                return
            until = self._errors.record((division, endpoint), self.exact_clock.now(), self._config.error_limit_per_hour)
            if until is not None:
                bump(self._counters.error_limit_blocks, division)
                self._counters.error_limit_blocked_until.setdefault(division, {})[endpoint] = until

    def blocked_until(self, division: int, endpoint: str) -> float | None:
        """When the error-limit block on (division, endpoint) lifts, else None. Counts refused calls."""
        with self.lock:
            until = self._errors.blocked_until((division, endpoint), self.exact_clock.now())
            if until is not None:
                bump(self._counters.error_limit_blocked, division)
            return until

    def count_write(self, division: int) -> None:
        with self.lock:
            bump(self._counters.writes, division)

    def take_write_timeout(self) -> bool:
        """True (and one fewer left) while the `store_then_timeout` fault has writes to delay."""
        with self.lock:
            if self._config.store_then_timeout <= 0:
                return False
            self._config = dataclasses.replace(self._config, store_then_timeout=self._config.store_then_timeout - 1)
            return True

    def division_access(self, division: int) -> bool:
        return division in self.divisions and division not in self._config.restricted_divisions
