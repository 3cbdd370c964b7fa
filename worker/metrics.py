"""Prometheus metrics, read from the shared state at scrape time by one custom collector.

Why a collector over shared state rather than prometheus-client's multiprocess mode: syncs run in prefork worker
children that come and go, often on other hosts or containers than the web process. Multiprocess mode needs one
directory shared by every process, per-process files cleaned up when a child dies, and still loses everything a
restarted container held. Everything worth measuring is already recorded where every process writes it: runs,
rows, tokens, cursors and divisions in Postgres; rate budgets and API call counts in Redis; the queue in the
broker. So the collector reads those when Prometheus scrapes: the numbers are the same from any `serve` replica,
survive restarts, and work with any number of workers. A scrape costs a handful of aggregate queries.

Counters (`_total`) only grow while their rows exist: removing a connection removes its runs, which Prometheus
treats as a counter reset. `exact_sync_up{source}` says whether each source could be read; a failed source's
metrics are left out of that scrape rather than reported as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
import structlog
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from models import ConnectionStatus
from syncs.core.clock import SYSTEM_CLOCK, Clock
from syncs.core.settings import Settings
from syncs.lifecycle.connections import connection_reports
from syncs.limits.budgets import synced_divisions
from syncs.limits.callstats import CallStats
from syncs.limits.ratelimit import RateGate
from worker.app import worker_queues
from worker.freshness import expected_intervals
from worker.ops_state import (
    REFRESH_TOKEN_LIFETIME_SECONDS,
    entity_last_success,
    queue_length,
    row_counts,
    run_counts,
    running_runs,
    watched_entities,
)
from worker.webhook_report import delivery_counts, event_counts, subscription_reports

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "exact_sync"


class ExactSyncCollector(Collector):
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        redis_client: redis.Redis[Any],
        celery_app: Celery,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._redis = redis_client
        self._celery = celery_app
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_up", "1 when the source could be read during this scrape", labels=["source"])
        divisions: set[str] = set()
        sources = (
            ("postgres", self._database),
            ("redis", self._budgets),
            ("broker", self._queue),
            ("webhooks", self._webhooks),
        )
        for source, read in sources:
            try:
                found = list(read(divisions))
            except Exception as exc:
                log.warning("metrics.source_failed", source=source, error=f"{type(exc).__name__}: {exc}")
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from found
        yield up

    def _database(self, divisions: set[str]) -> Iterable[Metric]:
        now = self._clock.now()
        runs = CounterMetricFamily(f"{PREFIX}_runs", "Finished sync runs", labels=["connection", "status"])
        running = GaugeMetricFamily(f"{PREFIX}_runs_running", "Runs in progress", labels=["connection"])
        run_calls = CounterMetricFamily(f"{PREFIX}_run_api_calls", "API calls made by sync runs", labels=["connection"])
        rows = CounterMetricFamily(
            f"{PREFIX}_rows",
            "Rows written by succeeded runs (entity 'deleted': the sync/Deleted stream, all entities)",
            labels=["connection", "entity", "action"],
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_connection_status", "1 for the connection's current status", labels=["connection", "status"]
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_connection_paused", "1 when scheduled syncs are paused", labels=["connection"]
        )
        token_age = GaugeMetricFamily(
            f"{PREFIX}_refresh_token_age_seconds", "Age of the stored refresh token", labels=["connection"]
        )
        token_left = GaugeMetricFamily(
            f"{PREFIX}_refresh_token_expires_in_seconds",
            "Seconds until Exact drops the refresh token (30 days after issue)",
            labels=["connection"],
        )
        access_left = GaugeMetricFamily(
            f"{PREFIX}_access_token_expires_in_seconds", "Seconds until the access token expires", labels=["connection"]
        )
        failures = GaugeMetricFamily(
            f"{PREFIX}_token_refresh_failures",
            "Failed token refreshes (timeouts, 5xx) since the last successful one",
            labels=["connection"],
        )
        stale = GaugeMetricFamily(
            f"{PREFIX}_entity_last_success_age_seconds",
            "Seconds since the last succeeded sync of the entity (since the connection was added, if never): "
            "the default entities and any other it has synced; active, unpaused connections only",
            labels=["connection", "entity"],
        )
        expected = GaugeMetricFamily(
            f"{PREFIX}_entity_interval_seconds",
            "Seconds expected between two syncs of the entity: its cadence or override, at least the connection's "
            "interval; the webhook safety sweep while its topic's webhooks are healthy (alert on age > 3x this)",
            labels=["connection", "entity"],
        )
        division_age = GaugeMetricFamily(
            f"{PREFIX}_division_last_sync_age_seconds",
            "Seconds since the division was last synced completely",
            labels=["connection", "division"],
        )
        with self._sessions() as session:
            calls_by_connection: dict[str, int] = {}
            for count in run_counts(session):
                runs.add_metric([count.connection, count.status], count.runs)
                calls_by_connection[count.connection] = calls_by_connection.get(count.connection, 0) + count.api_calls
            for connection_name, calls in calls_by_connection.items():
                run_calls.add_metric([connection_name], calls)
            in_progress = running_runs(session)
            for row in row_counts(session):
                rows.add_metric([row.connection, row.entity, row.action], row.rows)
            last_success = entity_last_success(session)
            for report in connection_reports(session):
                connection, token = report.connection, report.token
                name = connection.name
                for status in ConnectionStatus:
                    state.add_metric([name, status.value], 1 if connection.status == status else 0)
                paused.add_metric([name], 1 if connection.paused else 0)
                running.add_metric([name], in_progress.get(name, 0))
                if token is not None:
                    age = now - token.refresh_token_issued_at.timestamp()
                    token_age.add_metric([name], age)
                    token_left.add_metric([name], REFRESH_TOKEN_LIFETIME_SECONDS - age)
                    failures.add_metric([name], token.refresh_failures)
                    if token.expires_at is not None:
                        access_left.add_metric([name], token.expires_at.timestamp() - now)
                for division in report.divisions:
                    if division.last_synced_at is not None:
                        division_age.add_metric([name, str(division.code)], now - division.last_synced_at.timestamp())
                divisions.update(str(code) for code in synced_divisions(session, connection))
                if connection.status != ConnectionStatus.ACTIVE or connection.paused:
                    continue
                intervals = expected_intervals(session, self._settings, self._redis, connection, now)
                for entity in watched_entities(connection.id, last_success, intervals):
                    finished = last_success.get((connection.id, entity), connection.created_at)
                    stale.add_metric([name, entity], now - finished.timestamp())
                    if entity in intervals:
                        expected.add_metric([name, entity], intervals[entity])
        return (runs, running, run_calls, rows, state, paused, token_age, token_left, access_left, failures, stale,
                expected, division_age)  # fmt: skip

    def _budgets(self, divisions: set[str]) -> Iterable[Metric]:
        calls = CounterMetricFamily(f"{PREFIX}_api_calls", "Answers from Exact's API per division", labels=["division"])
        limited = CounterMetricFamily(
            f"{PREFIX}_api_rate_limited", "429 answers from Exact's API per division", labels=["division"]
        )
        remaining = GaugeMetricFamily(
            f"{PREFIX}_budget_remaining",
            "API calls left in the window (Exact's headers)",
            labels=["division", "window"],
        )
        limit = GaugeMetricFamily(
            f"{PREFIX}_budget_limit", "API calls allowed per window", labels=["division", "window"]
        )
        for division, totals in CallStats(self._redis, self._settings.redis_key_prefix, self._clock).totals().items():
            calls.add_metric([division], totals.calls)
            limited.add_metric([division], totals.rate_limited)
        gate = RateGate(self._redis, self._settings.redis_key_prefix, self._clock)
        for division in sorted(divisions):
            budget = gate.status(division)
            for window, left, allowed in (
                ("minutely", budget.minutely_remaining, budget.minutely_limit),
                ("daily", budget.daily_remaining, budget.daily_limit),
            ):
                if left is not None:
                    remaining.add_metric([division, window], left)
                if allowed is not None:
                    limit.add_metric([division, window], allowed)
        return calls, limited, remaining, limit

    def _webhooks(self, _: set[str]) -> Iterable[Metric]:
        """Exact's webhooks in, ours out; from Postgres and (for each topic's polling health) Redis."""
        now = self._clock.now()
        events = CounterMetricFamily(
            f"{PREFIX}_webhook_events",
            "Verified webhook events from Exact, by topic and what became of them (received, queued, synced, ignored)",
            labels=["topic", "status"],
        )
        last_event = GaugeMetricFamily(
            f"{PREFIX}_webhook_last_event_age_seconds",
            "Seconds since the newest event of a subscribed topic in the division",
            labels=["connection", "division", "topic"],
        )
        healthy = GaugeMetricFamily(
            f"{PREFIX}_webhook_subscription_healthy",
            "1 while the topic's webhooks are trusted (its entities polled only as a safety sweep), else 0",
            labels=["connection", "division", "topic"],
        )
        deliveries = GaugeMetricFamily(
            f"{PREFIX}_outgoing_deliveries",
            "Outgoing webhook deliveries by status (pending, delivered, failed)",
            labels=["connection", "status"],
        )
        with self._sessions() as session:
            for count in event_counts(session):
                events.add_metric([count.topic, count.status], count.events)
            for sub in subscription_reports(session, self._settings, self._redis):
                labels = [sub.connection, str(sub.division), sub.topic]
                healthy.add_metric(labels, 1 if sub.healthy else 0)
                if sub.last_event is not None:
                    last_event.add_metric(labels, now - sub.last_event.timestamp())
            for delivery in delivery_counts(session):
                deliveries.add_metric([delivery.connection, delivery.status], delivery.deliveries)
        return events, last_event, healthy, deliveries

    def _queue(self, _: set[str]) -> Iterable[Metric]:
        """Every queue the worker consumes: ours and, for plain Celery clients, Celery's default one."""
        waiting = GaugeMetricFamily(f"{PREFIX}_queue_messages", "Tasks waiting in the Celery queue", labels=["queue"])
        for queue in worker_queues(self._settings):
            waiting.add_metric([queue], queue_length(self._celery, queue))
        return (waiting,)


def metrics_renderer(collector: ExactSyncCollector) -> Callable[[], bytes]:
    """The exposition text of our collector alone (no process metrics of whichever replica answers)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return lambda: generate_latest(registry)
