"""The Celery app: `celery -A worker.app worker` / `celery -A worker.app beat`.

Reliability settings, and why:
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after the task finished,
  so a worker killed mid-sync leaves the message to be redelivered instead of losing it. Redelivery is safe: a
  sync is idempotent (it resumes from committed cursors) and a per-connection advisory lock skips duplicates.
- `visibility_timeout`: Redis redelivers unacknowledged messages after this many seconds; it must exceed the
  longest sync and the longest retry countdown (see `worker.tasks`), or a message would run twice (harmlessly,
  thanks to the lock, but wastefully).
- `worker_prefetch_multiplier=1`: a long sync never holds other connections' messages hostage.
- Queues: the worker consumes `CELERY_QUEUE` and, unless `CELERY_CONSUME_DEFAULT_QUEUE` is off, Celery's default
  queue `celery`, so a plain `Celery(broker=..., backend=...)` client's `send_task` reaches it. Results are stored
  under Celery's standard keys (`celery-task-meta-<id>`, task ids are UUIDs), where such a client looks for them.
- task events on: Flower shows each task by its public name (`exact.sync_connection`) and JSON arguments.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import after_setup_logger
from kombu import Queue

from syncs.core.logging import configure_logging
from syncs.core.settings import Settings, get_settings

SCHEDULER = "worker.scheduler:ConnectionScheduler"
# Task names are public (any Celery client may send_task them); one place defines them.
SYNC_TASK = "exact.sync_connection"
DIVISION_TASK = "exact.sync_division"  # one division of a run (sent by SYNC_TASK, not meant to be sent by hand)
FINISH_TASK = "exact.finish_run"  # adds a run's division outcomes up
KEEP_ALIVE_TASK = "exact.keep_alive"
WEBHOOK_SYNC_TASK = "exact.webhook_sync"
WEBHOOK_SWEEP_TASK = "exact.webhook_sweep"
WEBHOOK_RETENTION_TASK = "exact.webhook_retention"
AUTO_SUBSCRIBE_TASK = "exact.webhook_subscribe"  # sent after a connect when WEBHOOK_AUTO_SUBSCRIBE is on
DELIVER_WEBHOOK_TASK = "exact.deliver_webhook"
ACTION_TASK = "exact.action"
CELERY_DEFAULT_QUEUE = "celery"
RETENTION_EVERY_SECONDS = 6 * 3600.0  # where a Celery client without routing configuration sends tasks


def worker_queues(settings: Settings) -> list[str]:
    """The queues a worker consumes: ours, and Celery's default one for clients that know no routing."""
    queues = [settings.celery_queue]
    if settings.celery_consume_default_queue and settings.celery_queue != CELERY_DEFAULT_QUEUE:
        queues.append(CELERY_DEFAULT_QUEUE)
    return queues


def celery_key_options(settings: Settings) -> dict[str, str]:
    """Transport options giving Celery's own Redis keys CELERY_KEY_PREFIX (none by default: standard names)."""
    return {"global_keyprefix": settings.celery_key_prefix} if settings.celery_key_prefix else {}


def create_app(settings: Settings) -> Celery:
    tasks = [
        "worker.tasks",
        "worker.lifecycle_tasks",
        "worker.action_tasks",
        "worker.webhook_tasks",
        "worker.outgoing",
        "worker.auto_subscribe",
    ]
    app = Celery("exact_sync", include=tasks)
    app.conf.update(
        broker_url=settings.redis_url,
        result_backend=settings.redis_url,
        result_backend_transport_options=celery_key_options(settings),
        result_expires=7 * 24 * 3600,
        task_default_queue=settings.celery_queue,
        # A `celery worker` started without -Q consumes these (exact-sync worker passes the same list).
        task_queues=[Queue(name) for name in worker_queues(settings)],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        broker_transport_options={
            "visibility_timeout": settings.celery_visibility_timeout_seconds,
            **celery_key_options(settings),
        },
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        # Task events for Flower (`docker compose --profile flower up`): a few small messages per sync, which the
        # broker drops when nobody listens.
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        beat_scheduler=SCHEDULER,
        beat_max_loop_interval=max(1.0, settings.beat_tick_seconds),
        # Static entries run next to the connection scheduler (under the same beat leader lock).
        beat_schedule={
            # Webhook events recorded while the broker was down (or whose sync never came) are sent again.
            "exact-webhook-sweep": {
                "task": WEBHOOK_SWEEP_TASK,
                "schedule": max(1.0, settings.webhook_sweep_seconds),
                "options": {"expires": max(1.0, settings.webhook_sweep_seconds)},
            },
            # Settled webhook events and deliveries past their retention are deleted.
            "exact-webhook-retention": {
                "task": WEBHOOK_RETENTION_TASK,
                "schedule": RETENTION_EVERY_SECONDS,
                "options": {"expires": RETENTION_EVERY_SECONDS},
            },
            "exact-keep-alive": {
                "task": KEEP_ALIVE_TASK,
                "schedule": max(60.0, settings.token_keepalive_check_minutes * 60),
                # A missed check is superseded by the next one.
                "options": {"expires": max(60.0, settings.token_keepalive_check_minutes * 60)},
            },
        },
    )
    return app


@after_setup_logger.connect
def _structured_logging(**_: Any) -> None:
    """Worker and beat log through structlog with secrets redacted, like the CLI."""
    configure_logging(get_settings())


app = create_app(get_settings())
