"""Debouncing webhook events into few targeted syncs.

A burst of events for one topic in one division (500 invoices booked in a minute) must become one or two
syncs, not 500. The first event of a quiet period claims a Redis key (`SET NX EX`) and schedules one sync
`debounce` seconds later; events arriving while the key exists ride along with that sync. The sync deletes the
key when it starts, so an event arriving once it has started (which it might not see) schedules the next one.
The key outlives the countdown by far (a busy worker may start the sync late) but not forever: a sync lost
with its message would only hold events back until the key expires and the sweeper sends them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import redis

from syncs.webhooks.events import Target

Send = Callable[[Target, float], None]  # schedule the targeted sync after this many seconds


class Debouncer:
    def __init__(self, client: redis.Redis[Any], prefix: str, debounce_seconds: float) -> None:
        self.client = client
        self.prefix = prefix
        self.debounce = debounce_seconds

    def key(self, target: Target) -> str:
        return f"{self.prefix}:webhook:scheduled:{target.connection}:{target.division}:{target.topic}"

    def schedule(self, target: Target, send: Send) -> bool:
        """Make sure a sync of `target` is scheduled; True when this call scheduled it. Raises when Redis or
        the broker cannot be reached (the event stays recorded for the sweeper)."""
        hold = math.ceil(self.debounce * 4) + 300
        if not self.client.set(self.key(target), "1", nx=True, ex=hold):
            return False
        try:
            send(target, self.debounce)
        except BaseException:
            self.client.delete(self.key(target))
            raise
        return True

    def started(self, target: Target) -> None:
        """The scheduled sync starts: later events need a sync of their own."""
        self.client.delete(self.key(target))
