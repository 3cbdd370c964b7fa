"""Webhooks in the operator views: events received through `serve`'s real receiver, subscriptions and outgoing
deliveries show in `/metrics` and on the dashboard with the values the tables hold."""

from __future__ import annotations

import httpx
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Connection, WebhookDelivery, WebhookEvent
from syncs.core.settings import Settings
from syncs.engine.cadence import set_entity
from syncs.sandbox import SandboxServer
from tests.faults.conftest import register
from tests.lifecycle.conftest import ServerThread
from tests.ops.conftest import ADMIN, DIV, scrape, value
from tests.support.clock import FakeClock
from tests.support.net import free_port
from tests.support.subscriptions import add_subscriptions
from tests.worker.test_webhooks import content, post, signed
from worker.runs import execute_sync
from worker.web import create_web_app

SECOND = 124133


def test_webhooks_show_in_metrics_and_on_the_dashboard(
    ops_settings: Settings, db: sessionmaker[Session], sandbox: SandboxServer, clock: FakeClock
) -> None:
    settings = ops_settings.model_copy(update={"exact_webhook_secret": SecretStr("webhook-test-secret")})
    register(db, settings, sandbox.state)
    execute_sync(settings, "acme", clock=clock)  # the connection knows its two divisions
    with db() as session:
        acme = session.scalars(select(Connection).where(Connection.name == "acme")).one()
    add_subscriptions(db, acme.id, ["Accounts"], (DIV, SECOND))  # every division: healthy
    add_subscriptions(db, acme.id, ["SalesInvoices"], (DIV,))  # one division missing: polled at the normal cadence
    with db.begin() as session:
        set_entity(session, acme.id, "vat_codes", enabled=False, every_minutes=None)  # off: never stale
        for status in ("delivered", "delivered", "failed", "pending"):
            session.add(WebhookDelivery(connection_id=acme.id, entity="accounts", url="https://app.example.com/h",
                                        payload="{}", status=status, attempts=1))  # fmt: skip

    with ServerThread(create_web_app(settings, clock), free_port()) as web:
        hook = f"{web.base_url}{settings.webhook_path}"
        for key in ("a1", "a2", "a3"):
            assert post(hook, signed(content("Accounts", DIV, key=key))) == 200
        assert post(hook, signed(content("NoSuchTopic", DIV, key="x"))) == 200  # acknowledged, ignored
        assert post(hook, signed(content("Accounts", DIV, key="a1"), secret="forged")) == 401  # never counted
        clock.advance(30)
        samples = scrape(web.base_url)
        page = httpx.get(f"{web.base_url}/dashboard", headers=ADMIN).text

    with db() as session:
        recorded = session.execute(select(WebhookEvent.topic, WebhookEvent.status, WebhookEvent.received_at)).all()
    by_status: dict[tuple[str, str], int] = {}
    for topic, status, _ in recorded:
        by_status[topic, status] = by_status.get((topic, status), 0) + 1
    assert sum(by_status.values()) == 4 and by_status[("NoSuchTopic", "ignored")] == 1
    for (topic, status), count in by_status.items():
        assert value(samples, "exact_sync_webhook_events_total", topic=topic, status=status) == count
    newest = max(at for topic, _, at in recorded if topic == "Accounts")
    age = value(samples, "exact_sync_webhook_last_event_age_seconds", connection="acme", division=DIV, topic="Accounts")
    assert age == clock.now() - newest.timestamp()
    assert not [
        k for k in samples if k[0] == "exact_sync_webhook_last_event_age_seconds" and ("division", str(SECOND)) in k[1]
    ]
    healthy = "exact_sync_webhook_subscription_healthy"
    assert value(samples, healthy, connection="acme", division=DIV, topic="Accounts") == 1
    assert value(samples, healthy, connection="acme", division=SECOND, topic="Accounts") == 1
    assert value(samples, healthy, connection="acme", division=DIV, topic="SalesInvoices") == 0
    assert value(samples, "exact_sync_outgoing_deliveries", connection="acme", status="delivered") == 2
    assert value(samples, "exact_sync_outgoing_deliveries", connection="acme", status="failed") == 1
    assert value(samples, "exact_sync_up", source="webhooks") == 1

    # Freshness is judged against each entity's own schedule: the connection's interval for transactional data,
    # the daily cadence for reference lists, the safety sweep while its topic's webhooks are healthy.
    interval = "exact_sync_entity_interval_seconds"
    assert value(samples, interval, connection="acme", entity="sales_invoices") == 15 * 60
    assert value(samples, interval, connection="acme", entity="journals") == 86400
    assert value(samples, interval, connection="acme", entity="accounts") == 6 * 3600
    for metric in (interval, "exact_sync_entity_last_success_age_seconds"):  # switched off: neither
        assert not [k for k in samples if k[0] == metric and ("entity", "vat_codes") in k[1]]
    assert value(samples, "exact_sync_entity_last_success_age_seconds", connection="acme", entity="journals") >= 0

    assert "Webhooks from Exact" in page and "Outgoing webhooks" in page
    assert "webhooks healthy: polled every 6 h as a safety sweep" in page
    assert f"normal cadence: not subscribed in division {SECOND}" in page
    assert 'data-copy="exact-sync webhooks replay --failed acme"' in page
    assert "every 6.0 h" in page and "every 24.0 h" in page and "exact-sync sync acme -e vat_codes" not in page
