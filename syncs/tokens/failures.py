"""Failed token refreshes: what is recorded, when the next attempt may come, and what `status` tells the user."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, ConnectionStatus, ConnectionToken
from syncs.core.clock import to_datetime
from syncs.core.settings import Settings


def record_failure(
    sessions: sessionmaker[Session], connection_id: int, message: str, now: float, *, reauth: bool
) -> None:
    """A failed refresh on the token row (a failure counts toward the backoff unless only new consent helps,
    which sets the connection to reauth_required with what to do)."""
    with sessions() as session, session.begin():
        session.execute(
            update(ConnectionToken)
            .where(ConnectionToken.connection_id == connection_id)
            .values(
                last_refresh_error=message,
                last_refresh_error_at=to_datetime(now),
                refresh_failures=ConnectionToken.refresh_failures + (0 if reauth else 1),
            )
        )
        if reauth:
            session.execute(
                update(Connection)
                .where(Connection.id == connection_id)
                .values(
                    status=ConnectionStatus.REAUTH_REQUIRED,
                    status_reason=reauth_reason(session, connection_id, message),
                )
            )


def next_refresh_attempt(row: ConnectionToken | None, settings: Settings) -> float | None:
    """Epoch second before which no refresh is tried (bounded backoff after timeouts and 5xx), or None."""
    if row is None or not row.refresh_failures or row.last_refresh_error_at is None:
        return None
    return row.last_refresh_error_at.timestamp() + settings.token_refresh_backoff.delay(row.refresh_failures)


def reauth_reason(session: Session, connection_id: int, message: str) -> str:
    """What `status` shows for a refused refresh token: what happened and what the user must do.

    After a refresh that got no answer (timeout, 5xx), Exact may have rotated the token without us hearing the
    new one; the stored token is then dead and only new consent helps.
    """
    connection = session.get(Connection, connection_id)
    name = connection.name if connection is not None else str(connection_id)
    row = session.get(ConnectionToken, connection_id)
    lost = ""
    if row is not None and row.refresh_failures:
        lost = (
            f" An earlier refresh got no answer ({row.refresh_failures} failure(s)); Exact may have rotated the "
            "token then."
        )
    return f"{message.rstrip('. ')}.{lost} Run `exact-sync connect {name}` again to give consent anew."
