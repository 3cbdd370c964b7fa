"""The change feed: a real LISTEN connection receives each committed page's payload; `changes` reads by cursor."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models import Connection
from syncs.core.settings import Settings
from syncs.entities.base import PageResult
from syncs.feed.changes import CHANNEL, record_change
from syncs.sandbox.server import SandboxServer
from tests.worker.conftest import CURRENT, wait_for
from worker.runs import execute_sync


@pytest.fixture
def listener(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """What a user's application does: a plain psycopg connection LISTENing on the documented channel."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f"LISTEN {CHANNEL}")
        yield connection


def received(listener: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]


def feed(db: sessionmaker[Session], after: int = 0) -> list[dict[str, Any]]:
    """`changes` read by cursor, as a polling client does."""
    with db() as session:
        rows = session.execute(text("SELECT * FROM changes WHERE seq > :after ORDER BY seq"), {"after": after})
        return [dict(row._mapping) for row in rows]


def test_a_sync_notifies_each_committed_page_and_the_feed_reads_by_cursor(
    sandbox_settings: Settings,
    sandbox: SandboxServer,
    db: sessionmaker[Session],
    add_sandbox_connection: Callable[..., Any],
    listener: psycopg.Connection[Any],
) -> None:
    add_sandbox_connection("acme")
    first = execute_sync(sandbox_settings, "acme")
    payloads = received(listener)
    assert payloads and {p["connection"] for p in payloads} == {"acme"}
    assert sum(p["inserted"] for p in payloads) == first.inserted
    rows = feed(db)
    assert [p["seq"] for p in payloads] == [r["seq"] for r in rows]
    assert all(p["cursor"] > 0 and p["updated"] == 0 for p in payloads)
    last_seen = rows[-1]["seq"]

    state = sandbox.state
    changed = state.update_account(CURRENT, state.accounts(CURRENT)[0]["ID"], Name="Renamed BV")
    gone = state.delete_account(CURRENT, state.accounts(CURRENT)[1]["ID"])
    execute_sync(sandbox_settings, "acme")
    payloads = received(listener)
    by_entity = {p["entity"]: p for p in payloads}
    assert set(by_entity) == {"accounts", "deleted"}  # idle streams and idle divisions say nothing
    assert by_entity["accounts"] == {**by_entity["accounts"], "division": CURRENT, "inserted": 0, "updated": 1}
    assert by_entity["accounts"]["cursor"] == changed["Timestamp"]
    assert (by_entity["deleted"]["deleted"], by_entity["deleted"]["cursor"]) == (1, gone["Timestamp"])

    newer = feed(db, after=last_seen)
    assert [r["seq"] for r in newer] == [p["seq"] for p in payloads]
    with db() as session:  # a page's rows carry its commit time: the feed row finds exactly them
        names = (
            session.execute(
                text(
                    "SELECT a.name FROM accounts a JOIN changes c"
                    " ON a.synced_at = c.committed_at AND a.division = c.division WHERE c.seq = :seq"
                ),
                {"seq": by_entity["accounts"]["seq"]},
            )
            .scalars()
            .all()
        )
    assert names == ["Renamed BV"]


def test_feed_numbers_become_visible_in_commit_order(db: sessionmaker[Session], database_url: str) -> None:
    """A writer that numbered its row first but commits last must not let a later number be seen before it."""
    with db.begin() as session:
        session.add(Connection(name="acme", region="nl"))
    page = PageResult(inserted=1, max_timestamp=5)
    slow = db()
    first = record_change(slow, 1, CURRENT, "accounts", page, 5)
    done: list[int | None] = []

    def second_writer() -> None:
        with db.begin() as session:
            done.append(record_change(session, 1, CURRENT, "accounts", page, 6))

    writer = threading.Thread(target=second_writer)
    writer.start()
    wait_for(lambda: waiting_on_advisory_lock(db))
    assert feed(db) == [] and not done  # the second writer waits for the first one's commit
    slow.commit()
    slow.close()
    writer.join(10)
    assert first is not None and done and done[0] is not None and done[0] > first
    assert [r["seq"] for r in feed(db)] == [first, done[0]]


def waiting_on_advisory_lock(db: sessionmaker[Session]) -> bool:
    with db() as session:
        return bool(session.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")))
