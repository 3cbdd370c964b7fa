"""The documented exception tree.

`RetriableError` subclasses are worth trying again later (Celery's `autoretry_for` names exactly this class);
`FatalError` subclasses are not: retrying them only burns Exact's error budget or a single-use refresh token.
"""

from __future__ import annotations


class ExactSyncError(Exception):
    """Base of every error exact-sync raises on purpose."""


class RetriableError(ExactSyncError):
    """A passing condition: a later attempt may succeed."""


class FatalError(ExactSyncError):
    """Retrying will not help; a person (or a code change) must act."""


class RateLimitedError(RetriableError):
    """Exact answered 429 or the rate budget is spent; `retry_at` is the epoch second when calls may resume."""

    def __init__(self, message: str, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class ExactServerError(RetriableError):
    """Exact answered 5xx."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ExactUnavailableError(RetriableError):
    """Exact could not be reached or did not answer in time."""


class AmbiguousWriteError(ExactUnavailableError):
    """A write (POST/PUT/DELETE) was sent but no answer came (timeout, lost connection, 5xx): Exact may or may
    not have stored it. Never re-sent by the client; the action layer looks the record up before sending again."""


class LockUnavailableError(RetriableError):
    """A lock (Redis) could not be taken or the lock service is down."""


class LockLostError(RetriableError):
    """The run's advisory lock vanished (its database connection ended): the run stopped before committing more."""


class ExactRequestError(FatalError):
    """Exact refused the request (400, 403, 404, ...); `reason` carries the 403 Reason header when present."""

    def __init__(self, message: str, status_code: int, reason: str | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.reason = reason
        self.body = body  # Exact's error body as it came (the proxy hands it on)


class ReauthRequiredError(FatalError):
    """The refresh token is dead (reused, expired, revoked): the user must consent again."""


class TokenRefreshError(RetriableError):
    """The token endpoint failed in a way that may pass (timeout, 5xx); the stored pair was left as it was."""


class MalformedResponseError(FatalError):
    """Exact (or something in between) sent a body we cannot read as an OData envelope."""


class ForeignHostError(MalformedResponseError):
    """A URL (a d.__next, a proxy path) points off Exact's host: our bearer token is never sent there."""


class PaginationLoopError(FatalError):
    """`d.__next` pointed at a page we had already fetched."""


class ConfigurationError(FatalError):
    """Missing or invalid configuration (no encryption key, no client id, unknown connection, ...)."""


class ConnectionInactiveError(FatalError):
    """The connection is not `active` (it needs re-consent or was disabled)."""


class ErrorBudgetExhaustedError(FatalError):
    """Too many 400/401/403/404 answers from one endpoint within the hour: we stop calling it before Exact's
    error limit blocks the app key. `retry_at` is the epoch second when calls may resume."""

    def __init__(self, message: str, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at
