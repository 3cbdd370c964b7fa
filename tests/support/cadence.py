"""What an idle scheduled run reads per division: the transactional entities and the deletions stream."""

from __future__ import annotations

from syncs.entities.declaration import Cadence
from syncs.entities.registry import ENTITIES


def every_run_streams() -> int:
    return sum(1 for spec in ENTITIES.values() if spec.cadence is Cadence.TRANSACTIONAL) + 1
