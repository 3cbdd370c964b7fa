"""The sandbox's settings (changeable at runtime) and the counters tests read back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DivisionSpec = tuple[int, str]


@dataclass
class SandboxConfig:
    access_token_lifetime: float = 600.0
    refresh_window: float = 30.0  # a refresh earlier than lifetime - window after issue is refused
    refresh_token_lifetime: float = 30 * 86400.0
    minutely_limit: int | None = 60  # per division; None or 0 = unlimited
    daily_limit: int | None = 5000
    page_size: int = 1000
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    seed: bool = True
    server_utc_offset: int | None = None  # Me.ServerUtcOffset; None = Amsterdam's offset at the clock's now
    # Divisions beyond the two built in: (code, description) pairs; the control API also takes bare codes.
    extra_divisions: tuple[DivisionSpec, ...] = ()
    # The login has them but consent does not: 403 with header Reason: NoDivisionAccess.
    restricted_divisions: tuple[int, ...] = ()
    # The Reason header of those 403s (None: no header); e.g. "BlockedUser" for a login-wide refusal.
    restricted_reason: str | None = "NoDivisionAccess"
    # GET /api/oauth2/auth: the test user refuses consent (redirect with error=access_denied).
    deny_consent: bool = False
    # Exact's error limit: more than this many 400/401/403/404 per (division, endpoint) within an hour
    # blocks that endpoint for an hour (403). None disables.
    error_limit_per_hour: int | None = 10
    # Faults (all off by default):
    error_rate: float = 0.0  # fraction of API calls answered with a 500
    burst_429: int = 0  # the next N API calls of every division answer 429 (counted from when it is set)
    burst_429_headers: bool = True  # burst 429s carry minutely headers; False: no rate headers at all
    latency: float = 0.0  # real seconds added before each API response
    # The next N writes (POST/PUT/DELETE) are stored, then answered only after this many real seconds more
    # than `write_timeout_delay` (set it above the client's timeout): Exact storing a write whose answer is lost.
    store_then_timeout: int = 0
    write_timeout_delay: float = 2.0
    fault_seed: int = 0
    # Webhooks (syncs/sandbox/webhooks.py): the app's webhook secret deliveries are signed with; faults: sign
    # with a wrong secret, send every delivery this many extra times.
    webhook_secret: str = "sandbox-webhook-secret"
    webhook_bad_signature: bool = False
    webhook_duplicates: int = 0
    # The sandbox's clock runs this many seconds ahead of the injected one (negative: behind): its Date header,
    # token windows, rate resets and timestamps all use it, as Exact's own clock would be off a worker's.
    clock_offset_seconds: float = 0.0
    # Where issued tokens are kept across restarts (a file; None: in memory only, lost when the process ends).
    token_file: str | None = None


def _division_spec(value: Any) -> DivisionSpec:
    if isinstance(value, dict):
        code = int(value["Code"])
        return code, str(value.get("Description") or f"Division {code}")
    if isinstance(value, list | tuple):
        code = int(value[0])
        return code, str(value[1]) if len(value) > 1 else f"Division {code}"
    code = int(value)
    return code, f"Division {code}"


def normalise(changes: dict[str, Any]) -> dict[str, Any]:
    """JSON lists from the control API -> the tuples SandboxConfig holds."""
    out = dict(changes)
    if "restricted_divisions" in out:
        out["restricted_divisions"] = tuple(int(d) for d in out["restricted_divisions"])
    if "extra_divisions" in out:
        out["extra_divisions"] = tuple(_division_spec(d) for d in out["extra_divisions"])
    return out


@dataclass
class Counters:
    token_requests: int = 0
    tokens_issued: int = 0
    token_refresh_refused_early: int = 0
    old_refresh_token_used: int = 0
    refresh_token_expired: int = 0
    invalid_grant: int = 0
    invalid_client: int = 0
    consents_given: int = 0  # GET /api/oauth2/auth redirects with a code
    consents_denied: int = 0  # ... with error=access_denied
    authorize_refused: int = 0  # ... answered 400 for an unknown client_id
    http_401: int = 0
    faults_injected: int = 0
    api_calls: dict[int, int] = field(default_factory=dict)  # per division, calls that passed the budget
    # Per division, 429s from the rate budget (burst 429s are in burst_429_sent only).
    http_429: dict[int, int] = field(default_factory=dict)
    # {division: {window_start_epoch: count}}: the window is the refused limit's (minute, or UTC day).
    http_429_per_window: dict[int, dict[int, int]] = field(default_factory=dict)
    burst_429_sent: dict[int, int] = field(default_factory=dict)  # per division, injected 429s
    http_5xx: dict[int, int] = field(default_factory=dict)  # per division, injected 500s
    writes: dict[int, int] = field(default_factory=dict)  # per division, POST/PUT/DELETE that changed data
    # Per division, 400/401/403/404 API responses (what Exact's error limit counts).
    http_4xx: dict[int, int] = field(default_factory=dict)
    error_limit_blocks: dict[int, int] = field(default_factory=dict)  # per division, blocks started
    error_limit_blocked: dict[int, int] = field(default_factory=dict)  # per division, calls refused
    # {division: {endpoint: epoch the block lifts}} for blocks in force or lifted since the last reset.
    error_limit_blocked_until: dict[int, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bump(counter: dict[int, int], division: int) -> None:
    counter[division] = counter.get(division, 0) + 1
