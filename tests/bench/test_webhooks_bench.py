"""The webhooks benchmark's latency part end to end, quickly (a short debounce, one sample): the sandbox's
webhook reaches `exact-sync serve` and a real worker brings the change into Postgres. Its idle-cost part is the
method tests/faults/test_budgets.py checks.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from bench.webhooks import latency
from syncs.core.settings import Settings
from tests.conftest import ADMIN_URL, REDIS_URL


def test_the_latency_part_measures_a_change_arriving_through_a_webhook() -> None:
    base = Settings(
        _env_file=None, database_url=make_url(ADMIN_URL).render_as_string(hide_password=False), redis_url=REDIS_URL
    )
    lines = latency(base, debounce=0.5, samples=1)
    assert "debounce 0.5 s" in lines[0] and "1 samples" in lines[0]
    assert lines[1].endswith("(goal <= 60 s): MET")  # a change that never arrives raises instead
