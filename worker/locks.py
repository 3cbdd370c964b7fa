"""PostgreSQL session advisory locks for runs: one per connection (while a run is planned, and for the whole of an
in-process run) and one per connection and division (while that division is synced).

Each lock lives on a dedicated database connection, so Postgres releases it when the process dies (no TTL to
tune). But that connection is idle while the run works: an idle-session timeout, a pooler or an operator may end
it, and the lock vanishes silently. So the division lock is checked before every page commit, in the page's own
transaction (`guard_commits`): when its backend no longer holds it, the commit is refused with `LockLostError`
and the run stops; nothing of that page is committed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection as DbConnection
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.db import engine_for, session_factory
from syncs.core.errors import LockLostError

# First key of the connection lock (two-int form): "EXAC"; the second is the connection id.
CONNECTION_NAMESPACE = 0x45584143


@dataclass(frozen=True)
class AdvisoryKey:
    """A two-int advisory lock key, as pg_locks shows it: classid = first, objid = second, objsubid = 2."""

    first: int
    second: int


@dataclass(frozen=True)
class HeldLock:
    key: AdvisoryKey
    backend_pid: int  # the Postgres backend holding it

    def held_in(self, session: Session) -> bool:
        """Whether that backend still holds the lock (asked in the caller's transaction)."""
        return bool(session.scalar(HELD, _lock_params(self.key) | {"pid": self.backend_pid}))


# pg_locks lists every database's locks: advisory locks are per database.
_OURS = (
    "locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = :first AND objsubid = 2 AND granted"
)
HELD = text(f"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE {_OURS} AND objid::bigint = :second AND pid = :pid)")
ANY_DIVISION_HELD = text(f"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE {_OURS})")


def _int32(value: int) -> int:
    """A signed 32-bit int (what pg_try_advisory_lock(int, int) takes) with the same low 32 bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _lock_params(key: AdvisoryKey) -> dict[str, int]:
    """pg_locks shows the keys as unsigned oids."""
    return {"first": key.first & 0xFFFFFFFF, "second": key.second & 0xFFFFFFFF}


def connection_key(connection_id: int) -> AdvisoryKey:
    return AdvisoryKey(CONNECTION_NAMESPACE, _int32(connection_id))


def division_namespace(connection_id: int) -> int:
    """The first key shared by all division locks of one connection (a hash: no other first key is ours)."""
    digest = hashlib.blake2b(f"exact-sync:divisions:{connection_id}".encode(), digest_size=4).digest()
    return _int32(int.from_bytes(digest, "big"))


def division_key(connection_id: int, division: int) -> AdvisoryKey:
    return AdvisoryKey(division_namespace(connection_id), _int32(division))


@contextlib.contextmanager
def advisory_lock(database_url: str, key: AdvisoryKey) -> Iterator[HeldLock | None]:
    """Yields the held lock, or None when another session holds it."""
    db = engine_for(database_url).connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        row = db.execute(
            text("SELECT pg_try_advisory_lock(:a, :b), pg_backend_pid()"), {"a": key.first, "b": key.second}
        ).one()
    except BaseException:
        _discard(db)
        raise
    lock = HeldLock(key, int(row[1])) if row[0] else None
    try:
        yield lock
    finally:
        # No `return` in here: it would swallow the run's own exception (found by a Postgres restart mid-run).
        try:
            if lock is not None:
                db.execute(text("SELECT pg_advisory_unlock(:a, :b)"), {"a": key.first, "b": key.second})
        except Exception:
            # Never hand a connection that may still hold the lock back to the pool: close it instead,
            # which makes Postgres release the lock.
            _discard(db)
        else:
            db.close()


def connection_lock(database_url: str, connection_id: int) -> contextlib.AbstractContextManager[HeldLock | None]:
    return advisory_lock(database_url, connection_key(connection_id))


def _discard(db: DbConnection) -> None:
    with contextlib.suppress(Exception):
        db.invalidate()
    with contextlib.suppress(Exception):
        db.close()


def any_division_locked(sessions: sessionmaker[Session], connection_id: int) -> bool:
    """Whether some process is syncing a division of this connection right now."""
    with sessions() as session:
        return bool(session.scalar(ANY_DIVISION_HELD, {"first": division_namespace(connection_id) & 0xFFFFFFFF}))


def guard_commits(database_url: str, lock: HeldLock) -> sessionmaker[Session]:
    """A session factory whose every commit first checks, in its transaction, that `lock` is still held."""
    sessions = session_factory(database_url)

    def check(session: Session) -> None:
        if not lock.held_in(session):
            raise LockLostError(
                f"the advisory lock of this run (backend {lock.backend_pid}) was lost: its database connection "
                "ended; stopped before committing, another run may continue"
            )

    event.listen(sessions, "before_commit", check)
    return sessions
