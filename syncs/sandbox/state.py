"""All sandbox data, tokens, budgets and counters behind one lock; the HTTP layers only translate."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import threading
from typing import Any

from syncs.core.clock import SYSTEM_CLOCK, Clock, ShiftedClock
from syncs.sandbox import seed
from syncs.sandbox.config import Counters, SandboxConfig, normalise
from syncs.sandbox.division import DivisionData
from syncs.sandbox.errorlimit import ErrorLimit
from syncs.sandbox.ratelimit import RateLimiter
from syncs.sandbox.state_access import AccessDesk
from syncs.sandbox.state_data import DataDesk
from syncs.sandbox.tokens import TokenStore
from syncs.sandbox.webhooks import WebhookHub

__all__ = ["Counters", "SandboxConfig", "SandboxState"]


class SandboxState(AccessDesk, DataDesk):
    """All sandbox data, tokens, budgets and counters behind one lock (the desks are split by concern)."""

    def __init__(self, config: SandboxConfig | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.lock = threading.Lock()
        self._config = config or SandboxConfig()
        self.clock = clock  # the injected clock (tests move it)
        # Exact's clock, what everything here runs on: the injected one shifted by `clock_offset_seconds`.
        self.exact_clock: Clock = ShiftedClock(clock, lambda: self._config.clock_offset_seconds)
        self._tokens = TokenStore()
        if self._config.token_file and os.path.exists(self._config.token_file):
            with open(self._config.token_file, encoding="utf-8") as file:
                self._tokens.load(json.load(file))
        self._limiter = RateLimiter()
        self._counters = Counters()
        self._errors = ErrorLimit()
        self._burst_used: dict[int, int] = {}  # per division, burst 429s sent since burst_429 was last set
        self._faults = random.Random(self._config.fault_seed)
        self.webhooks = WebhookHub(self._config.client_id)
        self.me_template = seed.me_template()
        self.user_id: str = self.me_template["UserID"]
        self.divisions: dict[int, DivisionData] = {}
        self.add_division(seed.FIRST_DIVISION, "Nango")
        self.add_division(seed.SECOND_DIVISION, seed.SECOND_DESCRIPTION)
        if self._config.seed:
            now = self.exact_clock.now()
            seed.seed_first(self.divisions[seed.FIRST_DIVISION], now)
            seed.seed_second(self.divisions[seed.SECOND_DIVISION], now)
        self._add_extra_divisions()

    # configuration and counters ----------------------------------------------------------------------------
    @property
    def config(self) -> SandboxConfig:
        return self._config

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at runtime (limits, lifetimes, page size, faults); unknown names: TypeError."""
        with self.lock:
            changes = normalise(changes)
            self._config = dataclasses.replace(self._config, **changes)
            if "fault_seed" in changes:
                self._faults = random.Random(self._config.fault_seed)
            if "burst_429" in changes:
                self._burst_used.clear()
            config = self._config
        self._add_extra_divisions()
        return config

    def _add_extra_divisions(self) -> None:
        for code, description in self._config.extra_divisions:
            self.add_division(code, description)

    @property
    def counters(self) -> Counters:
        """A snapshot; take it again to see later changes."""
        with self.lock:
            return copy.deepcopy(self._counters)

    def reset_counters(self) -> None:
        with self.lock:
            self._counters = Counters()
            self._limiter.reset()
            self._errors.reset()

    def add_division(self, code: int, description: str) -> None:
        with self.lock:
            self.divisions.setdefault(code, DivisionData(code, description, self.user_id))

    @property
    def current_division(self) -> int:
        return next(iter(self.divisions))
