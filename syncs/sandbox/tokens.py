"""Exact's token rules: single-use refresh tokens, no refresh before the window, 30-day refresh token life."""

from __future__ import annotations

import base64
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

CODE_LIFETIME = 180.0  # authorization codes live 3 minutes


def new_code() -> str:
    """An authorization code with '!', '+', '/' and '=' in it, so a client that does not URL-decode the
    redirect's `code` (or does not form-encode it for the token request) is refused."""
    body = base64.b64encode(secrets.token_bytes(45)).decode("ascii")  # 60 chars, may hold + and /
    return f"stampNL001.{secrets.token_hex(2)}!IAAAA{body[:30]}+{body[30:]}/{secrets.token_hex(4)}=="


class TokenError(Exception):
    """A refused token request: the HTTP status and the flat OAuth error body Exact sends."""

    def __init__(self, status: int, error: str, description: str, counter: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.counter = counter  # name of the Counters field this refusal increments


@dataclass
class _Refresh:
    issued_at: float
    access_issued_at: float  # when the access token issued together with it was issued
    used: bool = False
    revoked: bool = False


@dataclass
class _Code:
    issued_at: float
    redirect_uri: str | None
    used: bool = False


@dataclass(frozen=True)
class Lifetimes:
    access: float
    refresh_window: float
    refresh: float


class TokenStore:
    def __init__(self) -> None:
        self._access: dict[str, float] = {}  # token -> issued_at
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}

    def issue(self, now: float, life: Lifetimes) -> dict[str, str]:
        access = secrets.token_urlsafe(24)
        refresh = secrets.token_urlsafe(24)
        self._access[access] = now
        self._refresh[refresh] = _Refresh(issued_at=now, access_issued_at=now)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": str(int(life.access)),
            "refresh_token": refresh,
        }

    def refresh(self, token: str, now: float, life: Lifetimes) -> dict[str, str]:
        entry = self._refresh.get(token)
        if entry is None or entry.revoked:
            raise TokenError(400, "invalid_grant", "The refresh token is invalid or revoked.", "invalid_grant")
        if entry.used:
            raise TokenError(401, "unauthorized_client", "Old refresh token used.", "old_refresh_token_used")
        if now > entry.issued_at + life.refresh:
            expired = datetime.fromtimestamp(entry.issued_at + life.refresh, tz=UTC)
            raise TokenError(
                400,
                "invalid_request",
                f"The refresh token expired at {expired:%Y-%m-%dT%H:%M:%SZ}",
                "refresh_token_expired",
            )
        if now < entry.access_issued_at + life.access - life.refresh_window:
            # Exact refuses and the refresh token stays usable.
            raise TokenError(401, "invalid_request", "Access token not expired", "token_refresh_refused_early")
        entry.used = True
        return self.issue(now, life)

    def issue_code(self, now: float, redirect_uri: str | None = None) -> str:
        code = new_code()
        self._codes[code] = _Code(issued_at=now, redirect_uri=redirect_uri)
        return code

    def exchange_code(self, code: str, redirect_uri: str | None, now: float, life: Lifetimes) -> dict[str, str]:
        entry = self._codes.get(code)
        if entry is None:
            raise TokenError(400, "invalid_grant", "The authorization code is invalid.", "invalid_grant")
        if entry.used:
            raise TokenError(400, "invalid_grant", "The authorization code has already been used.", "invalid_grant")
        if now > entry.issued_at + CODE_LIFETIME:
            raise TokenError(400, "invalid_grant", "The authorization code has expired.", "invalid_grant")
        if entry.redirect_uri and redirect_uri and redirect_uri != entry.redirect_uri:
            raise TokenError(400, "invalid_grant", "The redirect_uri does not match.", "invalid_grant")
        entry.used = True
        return self.issue(now, life)

    def access_status(self, token: str, now: float, life: Lifetimes) -> str:
        """ "ok", "expired" or "unknown". Old access tokens stay valid until their own expiry."""
        issued = self._access.get(token)
        if issued is None:
            return "unknown"
        return "ok" if now < issued + life.access else "expired"

    def dump(self) -> dict[str, Any]:
        """Everything a restarted sandbox needs to honour the tokens it issued (see `load`)."""
        return {
            "access": self._access,
            "refresh": {token: asdict(entry) for token, entry in self._refresh.items()},
            "codes": {code: asdict(entry) for code, entry in self._codes.items()},
        }

    def load(self, state: dict[str, Any]) -> None:
        self._access = {str(k): float(v) for k, v in state.get("access", {}).items()}
        self._refresh = {str(k): _Refresh(**v) for k, v in state.get("refresh", {}).items()}
        self._codes = {str(k): _Code(**v) for k, v in state.get("codes", {}).items()}

    def revoke_refresh_tokens(self) -> int:
        live = [e for e in self._refresh.values() if not e.used and not e.revoked]
        for entry in live:
            entry.revoked = True
        return len(live)
