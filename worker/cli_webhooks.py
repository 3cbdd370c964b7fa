"""`exact-sync webhooks ...`: Exact webhook subscriptions per division, and outgoing webhook deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.table import Table

from syncs.core.errors import ConfigurationError
from worker.cli_support import console, current_settings, expected_errors

if TYPE_CHECKING:
    from models import Connection
    from syncs.exact.client import ExactClient
    from syncs.webhooks import subscriptions

# Database, Redis and API libraries are imported by the commands that use them: `--help` starts without them.

webhooks_app = typer.Typer(no_args_is_help=True, help="Exact Online webhook subscriptions and outgoing webhooks.")

TopicOption = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Webhook topic (repeatable); default: every synced one.")
]
T = TypeVar("T")


@contextmanager
def _divisions_client(name: str) -> Iterator[tuple[ExactClient, Connection, list[int]]]:
    """An API client for the connection, and its synced divisions (known once it has synced or connected)."""
    import redis
    from sqlalchemy import select

    from models import Division
    from syncs.core.db import session_factory
    from syncs.exact.client import open_client
    from syncs.lifecycle.connections import get_connection_by_name

    settings = current_settings()
    sessions = session_factory(settings.database_url)
    with sessions() as session:
        connection = get_connection_by_name(session, name)
        divisions = list(
            session.scalars(
                select(Division.code)
                .where(Division.connection_id == connection.id, Division.sync_enabled, Division.available)
                .order_by(Division.code)
            )
        )
        session.expunge(connection)
    if not divisions and connection.current_division is not None:
        divisions = [connection.current_division]
    if not divisions:
        raise ConfigurationError(f"connection {name!r} has no known divisions yet: run a sync first")
    client_redis: redis.Redis[bytes] = redis.Redis.from_url(settings.redis_url)
    try:
        with open_client(settings, connection.id, connection.region, sessions=sessions, redis=client_redis) as client:
            yield client, connection, divisions
    finally:
        client_redis.close()


def _per_division(name: str, work: Callable[[ExactClient, int], list[subscriptions.Subscription]]) -> Table:
    """Run `work` in each division, store what it reports as the division's subscriptions, tabulate them."""
    from syncs.core.db import session_factory
    from syncs.webhooks import subscriptions

    sessions = session_factory(current_settings().database_url)
    table = Table(title=f"Webhook subscriptions of {name}")
    for column in ("division", "topic", "callback URL", "Exact ID"):
        table.add_column(column)
    with _divisions_client(name) as (client, connection, divisions):
        for division in divisions:
            found = work(client, division)
            with sessions.begin() as session:
                subscriptions.remember(session, connection.id, division, found)
            for s in found:
                table.add_row(str(division), s.topic, s.callback_url, s.id)
    return table


def _topics(topic: list[str] | None) -> list[str]:
    from syncs.webhooks.topics import KNOWN_TOPICS, synced_topics

    chosen = list(dict.fromkeys(topic or synced_topics()))
    unknown = [t for t in chosen if t not in KNOWN_TOPICS]
    if unknown:
        raise ConfigurationError(f"unknown webhook topic(s) {', '.join(unknown)}; known: {', '.join(KNOWN_TOPICS)}")
    return chosen


@webhooks_app.command("subscribe")
@expected_errors
def subscribe(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    topic: TopicOption = None,
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", help="Public HTTPS URL of `serve`'s webhook path.")
    ] = None,
) -> None:
    """Subscribe every synced division to the topics (only what is missing: safe to run again)."""
    url = callback_url or current_settings().webhook_callback_url
    if not url:
        raise ConfigurationError("give --callback-url or set WEBHOOK_CALLBACK_URL")
    topics = _topics(topic)
    from syncs.webhooks import subscriptions

    def work(client: ExactClient, division: int) -> list[subscriptions.Subscription]:
        now, made = subscriptions.subscribe(client, division, topics, url)
        for topic in topics:
            note = "subscribed" if any(s.topic == topic for s in made) else "already subscribed"
            console.print(f"division {division}: {topic} {note}")
        return now

    console.print(_per_division(name, work))


@webhooks_app.command("list")
@expected_errors
def list_(name: Annotated[str, typer.Argument(help="Connection name.")]) -> None:
    """The subscriptions Exact holds for each synced division (and our copy of them is refreshed)."""
    from syncs.webhooks import subscriptions

    console.print(_per_division(name, subscriptions.listed))


@webhooks_app.command("unsubscribe")
@expected_errors
def unsubscribe(name: Annotated[str, typer.Argument(help="Connection name.")], topic: TopicOption = None) -> None:
    """Delete the division's subscriptions of these topics (default: all); safe to run again."""
    from syncs.webhooks import subscriptions

    chosen = list(dict.fromkeys(topic)) if topic else None

    def work(client: ExactClient, division: int) -> list[subscriptions.Subscription]:
        left, gone = subscriptions.unsubscribe(client, division, chosen)
        for s in gone:
            console.print(f"division {division}: {s.topic} unsubscribed ({s.callback_url})")
        return left

    console.print(_per_division(name, work))


@webhooks_app.command("outgoing")
@expected_errors
def outgoing(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    url: Annotated[str | None, typer.Option("--url", help="POST each run's changes per entity here.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop sending outgoing webhooks.")] = False,
) -> None:
    """Set (or with --off remove) the connection's outgoing webhook URL."""
    from syncs.core.db import session_factory
    from syncs.feed.outgoing import set_outgoing_url
    from syncs.lifecycle.connections import get_connection_by_name

    settings = current_settings()
    if (url is None) == (not off):
        raise ConfigurationError("give either --url URL or --off")
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError(f"--url must be an http(s) URL, got {url!r}")
        if settings.outgoing_webhook_secret is None:
            raise ConfigurationError("set OUTGOING_WEBHOOK_SECRET first: outgoing webhooks are signed with it")
    with session_factory(settings.database_url).begin() as session:
        connection = get_connection_by_name(session, name)
        set_outgoing_url(session, connection.id, url)
    console.print(f"outgoing webhooks of {name}: {url or 'off'}")


@webhooks_app.command("deliveries")
@expected_errors
def deliveries(
    name: Annotated[str | None, typer.Argument(help="Only this connection.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only deliveries that gave up.")] = False,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Outgoing webhook deliveries: status, attempts and the last error."""
    from syncs.core.db import session_factory
    from syncs.feed.outgoing import FAILED, recent_deliveries
    from worker.views import when

    with session_factory(current_settings().database_url)() as session:
        rows = recent_deliveries(session, name, FAILED if failed else None, limit)
    table = Table(title="Outgoing webhook deliveries")
    for column in ("id", "connection", "run", "entity", "status", "attempts", "last answer", "created"):
        table.add_column(column)
    for connection_name, d in rows:
        answer = d.last_error or (str(d.last_status) if d.last_status else "-")
        table.add_row(
            str(d.id), connection_name, str(d.run_id or "-"), d.entity, d.status, str(d.attempts), answer,
            when(d.created_at),
        )  # fmt: skip
    console.print(table)


@webhooks_app.command("replay")
@expected_errors
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids.")] = None,
    failed: Annotated[str | None, typer.Option("--failed", help="Every failed delivery of this connection.")] = None,
) -> None:
    """Send deliveries again (from their first attempt on), e.g. after the receiver was fixed."""
    from syncs.core.db import session_factory
    from syncs.feed.outgoing import reset_deliveries
    from worker.app import create_app  # Celery: loaded only by the command that sends
    from worker.outgoing import send_deliveries

    if not ids and failed is None:
        raise ConfigurationError("give delivery ids or --failed NAME")
    settings = current_settings()
    with session_factory(settings.database_url).begin() as session:
        chosen = reset_deliveries(session, ids or [], failed)
    if not chosen:
        raise ConfigurationError("no such deliveries")
    send_deliveries(create_app(settings), settings, chosen)
    console.print(f"replaying deliveries {', '.join(map(str, chosen))}")
