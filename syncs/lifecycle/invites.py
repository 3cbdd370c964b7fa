"""Operator-issued, single-use connect links for `exact-sync serve`.

`serve`'s /connect answers only to an invite: a random token (32 bytes) bound to a connection name and region,
valid until it expires and for one use. Only a keyed hash of the token is stored (see syncs.core.crypto), so the
`connect_invites` table is worthless to someone who reads it. An invite for an existing connection reconnects it,
in its own region: a region differing from the connection's is refused when the invite is made.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectInvite, Connection
from syncs.core.clock import SYSTEM_CLOCK, Clock, to_datetime
from syncs.core.crypto import TokenCipher
from syncs.core.errors import ConfigurationError
from syncs.core.settings import Settings
from syncs.lifecycle.connections import validate_name, validate_region

PURPOSE = "connect-invite"
MAX_LIFETIME = timedelta(days=30)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Invite:
    url: str
    name: str
    region: str
    expires_at: datetime
    reconnect: bool


def parse_duration(text: str) -> timedelta:
    """'90m', '24h', '7d', '3600' (seconds) -> timedelta; at most 30 days, more than 0."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ConfigurationError(f"cannot read the duration {text!r}: use a number with s, m, h or d (e.g. 24h)")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_LIFETIME.total_seconds():  # compared before timedelta, which overflows on huge values
        raise ConfigurationError(f"an invite lives more than 0 s and at most 30 days, not {text!r}")
    return timedelta(seconds=seconds)


def serve_base_url(settings: Settings) -> str:
    """Where `serve` is reached: the scheme and host of EXACT_REDIRECT_URI (serve answers that callback)."""
    parts = urlsplit(settings.exact_redirect_uri)
    return f"{parts.scheme}://{parts.netloc}"


def create_invite(
    settings: Settings,
    sessions: sessionmaker[Session],
    cipher: TokenCipher,
    name: str,
    region: str | None = None,
    expires_in: timedelta = timedelta(hours=24),
    clock: Clock = SYSTEM_CLOCK,
) -> Invite:
    """Store a new invite and return its URL (the only place the token ever appears)."""
    name = validate_name(name)
    if not timedelta(0) < expires_in <= MAX_LIFETIME:
        raise ConfigurationError("an invite lives more than 0 s and at most 30 days")
    token = secrets.token_urlsafe(32)
    expires_at = to_datetime(clock.now()) + expires_in
    with sessions.begin() as session:
        existing = session.scalar(select(Connection.region).where(Connection.name == name))
        if existing is not None and region is not None and region != existing:
            raise ConfigurationError(
                f"connection {name!r} is in region {existing!r}; an invite reconnects it there (a region never "
                "changes: remove the connection first to connect it in another region)"
            )
        if existing is None and region is None:
            raise ConfigurationError(f"connection {name!r} does not exist yet: give its region with --region")
        bound_region = existing or validate_region(region or "")
        session.add(
            ConnectInvite(
                token_hash=cipher.keyed_hash(token, PURPOSE), name=name, region=bound_region, expires_at=expires_at
            )
        )
    url = f"{serve_base_url(settings)}/connect/{name}?{urlencode({'invite': token})}"
    return Invite(url, name, bound_region, expires_at, reconnect=existing is not None)


def _matching(cipher: TokenCipher, token: str, name: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        ConnectInvite.token_hash.in_(cipher.keyed_hashes(token, PURPOSE)),
        ConnectInvite.name == name,
        ConnectInvite.used_at.is_(None),
        ConnectInvite.expires_at > now,
    ]


def check_invite(session: Session, cipher: TokenCipher, token: str, name: str, now: datetime) -> str | None:
    """The region of a valid (unused, unexpired) invite for `name`, else None; reads only."""
    region: str | None = session.scalar(select(ConnectInvite.region).where(*_matching(cipher, token, name, now)))
    return region


def consume_invite(session: Session, cipher: TokenCipher, token: str, name: str, now: datetime) -> str | None:
    """Use the invite up (one conditional UPDATE: two requests racing cannot both win); its region, or None."""
    statement = (
        update(ConnectInvite)
        .where(*_matching(cipher, token, name, now))
        .values(used_at=now)
        .returning(ConnectInvite.region)
    )
    region: str | None = session.execute(statement).scalar_one_or_none()
    return region
