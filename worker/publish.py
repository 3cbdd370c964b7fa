"""Publish many task messages at once: what beat needs when thousands of connections are due in one tick.

`app.send_task` costs a broker round trip per message, a result-channel subscription in the sending process, and
building the message (a safe repr of the arguments and more): milliseconds each, so 10,000 due connections took
half a minute. Here Celery builds one message of the task (task protocol 2, JSON), and each call gets a copy with
its own id, arguments and expiry, in the envelope kombu's Redis transport uses for the anonymous exchange (as
`send_task` to a queue); the copies are pushed with one Redis LPUSH per call of `publish_many`: enqueued whole
or not at all. Redis brokers only (the broker this project uses); no results are
recorded for these messages (nobody waits for them). tests/worker/test_beat_scale.py checks the envelope against
`send_task`'s and has a real worker run such messages.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from celery import Celery, uuid


@dataclass(frozen=True)
class TaskCall:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    expires_seconds: float | None = None


def publish_many(app: Celery, task_name: str, queue: str, calls: Sequence[TaskCall]) -> list[str]:
    """Enqueue `calls` of `task_name` on `queue` in one transaction; returns their task ids."""
    if not calls:
        return []
    template = app.amqp.create_task_message("-", task_name, (), {}, ignore_result=True)
    embed = template.body[2]  # callbacks, errbacks, chain, chord: none
    now = datetime.now(UTC)
    ids, messages = [], []
    for call in calls:
        task_id = uuid()
        expires = call.expires_seconds
        headers = {
            **template.headers,
            "id": task_id,
            "root_id": task_id,
            "argsrepr": repr(list(call.args)),
            "kwargsrepr": repr(call.kwargs),
            "expires": (now + timedelta(seconds=expires)).isoformat() if expires is not None else None,
        }
        properties: dict[str, Any] = {
            **template.properties,
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": uuid(),
        }
        if expires is not None:
            properties["expiration"] = str(int(expires * 1000))
        body = orjson.dumps([list(call.args), call.kwargs, embed])
        envelope = {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
        messages.append(orjson.dumps(envelope))
        ids.append(task_id)
    # A connection from the app's broker pool: its channel and Redis client are made once per process, not for
    # every batch (a fresh connection per call set up a channel and a Redis connection each time).
    pool: Any = app.pool
    with pool.acquire(block=True) as connection:
        channel: Any = connection.default_channel
        # One LPUSH of them all: atomic, in order (workers pop from the other end). Priority 0 lives in the list
        # named after the queue.
        channel.client.lpush(queue, *messages)
    return ids
