"""`exact-sync webhooks ...`: Exact webhook subscriptions per division, and outgoing webhook deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from syncs.core.errors import ConfigurationError
from worker.cli_support import console, current_settings, expected_errors

if TYPE_CHECKING:
    from syncs.webhooks.subscriptions import Subscription

# Database, Redis and API libraries are imported by the commands that use them: `--help` starts without them.

webhooks_app = typer.Typer(no_args_is_help=True, help="Exact Online webhook subscriptions and outgoing webhooks.")

TopicOption = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Webhook topic (repeatable); default: every synced one.")
]


def _table(name: str, done: list[tuple[int, list[Subscription], list[Subscription]]]) -> Table:
    table = Table(title=f"Webhook subscriptions of {name}")
    for column in ("division", "topic", "callback URL", "Exact ID"):
        table.add_column(column)
    for division, found, _ in done:
        for s in found:
            table.add_row(str(division), s.topic, s.callback_url, s.id)
    return table


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
    from worker.subscribing import chosen_topics, subscribe_connection

    url = callback_url or current_settings().webhook_callback_url
    if not url:
        raise ConfigurationError("give --callback-url or set WEBHOOK_CALLBACK_URL")
    done = subscribe_connection(current_settings(), name, topic, url)
    for division, _, made in done:
        for chosen in chosen_topics(topic):
            note = "subscribed" if any(s.topic == chosen for s in made) else "already subscribed"
            console.print(f"division {division}: {chosen} {note}")
    console.print(_table(name, done))


@webhooks_app.command("list")
@expected_errors
def list_(name: Annotated[str, typer.Argument(help="Connection name.")]) -> None:
    """The subscriptions Exact holds for each synced division (and our copy of them is refreshed)."""
    from syncs.webhooks import subscriptions
    from worker.subscribing import per_division

    done = per_division(current_settings(), name, lambda client, division: (subscriptions.listed(client, division), []))
    console.print(_table(name, done))


@webhooks_app.command("unsubscribe")
@expected_errors
def unsubscribe(name: Annotated[str, typer.Argument(help="Connection name.")], topic: TopicOption = None) -> None:
    """Delete the division's subscriptions of these topics (default: all); safe to run again."""
    from syncs.webhooks import subscriptions
    from worker.subscribing import per_division

    chosen = list(dict.fromkeys(topic)) if topic else None
    done = per_division(
        current_settings(), name, lambda client, division: subscriptions.unsubscribe(client, division, chosen)
    )
    for division, _, gone in done:
        for s in gone:
            console.print(f"division {division}: {s.topic} unsubscribed ({s.callback_url})")
    console.print(_table(name, done))


@webhooks_app.command("outgoing")
@expected_errors
def outgoing(
    name: Annotated[str, typer.Argument(help="Connection name.")],
    url: Annotated[str | None, typer.Option("--url", help="POST each run's changes per entity here.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop sending outgoing webhooks.")] = False,
) -> None:
    """Set (or with --off remove) the connection's outgoing webhook URL."""
    from syncs.core.db import session_factory
    from syncs.core.settings import configured
    from syncs.feed.outgoing import set_outgoing_url
    from syncs.lifecycle.connections import get_connection_by_name

    settings = current_settings()
    if (url is None) == (not off):
        raise ConfigurationError("give either --url URL or --off")
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ConfigurationError(f"--url must be an http(s) URL, got {url!r}")
        if configured(settings.outgoing_webhook_secret) is None:
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
    from syncs.lifecycle.connections import get_connection_by_name
    from worker.views import when

    with session_factory(current_settings().database_url)() as session:
        if name is not None:
            get_connection_by_name(session, name)  # an unknown name is an error, not an empty list
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
    from syncs.lifecycle.connections import get_connection_by_name
    from worker.app import create_app  # Celery: loaded only by the command that sends
    from worker.outgoing import send_deliveries

    if not ids and failed is None:
        raise ConfigurationError("give delivery ids or --failed NAME")
    settings = current_settings()
    with session_factory(settings.database_url).begin() as session:
        if failed is not None:
            get_connection_by_name(session, failed)
        chosen = reset_deliveries(session, ids or [], failed)
    if not chosen and not ids:
        console.print(f"nothing to replay: {failed} has no failed deliveries")
        return
    if not chosen:
        raise ConfigurationError("no such deliveries")
    send_deliveries(create_app(settings), settings, chosen)
    console.print(f"replaying deliveries {', '.join(map(str, chosen))}")
