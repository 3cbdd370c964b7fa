"""All sandbox data, tokens, budgets and counters behind one lock; the HTTP layers only translate."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import threading
from datetime import datetime
from typing import Any

from syncs.core.clock import SYSTEM_CLOCK, Clock, ShiftedClock
from syncs.sandbox import seed
from syncs.sandbox.catalog import EntityStore, key_field
from syncs.sandbox.config import Counters, SandboxConfig, bump, normalise
from syncs.sandbox.dates import parse_exact
from syncs.sandbox.division import DivisionData, Record
from syncs.sandbox.errorlimit import ErrorLimit
from syncs.sandbox.fields import INVOICE_ROW_FIELDS
from syncs.sandbox.generate import generate as generate_data
from syncs.sandbox.ratelimit import RateLimiter, Verdict, burst_headers, day_window, minute_window
from syncs.sandbox.render import Page, SyncEntity, catalog_page, sync_page
from syncs.sandbox.tokens import Lifetimes, TokenError, TokenStore
from syncs.sandbox.webhooks import WebhookHub

__all__ = ["Counters", "SandboxConfig", "SandboxState"]
STANDARD_PAGE_SIZE = 60  # Exact's page size on standard (non-sync, non-bulk) endpoints


class SandboxState:
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

    # tokens ------------------------------------------------------------------------------------------------
    def _lifetimes(self) -> Lifetimes:
        c = self._config
        return Lifetimes(c.access_token_lifetime, c.refresh_window, c.refresh_token_lifetime)

    def _keep_tokens(self) -> None:
        """Write the token store to `token_file` (atomically), so a restart strands no stored connection."""
        path = self._config.token_file
        if path:
            temporary = f"{path}.tmp"
            with open(temporary, "w", encoding="utf-8") as file:
                json.dump(self._tokens.dump(), file)
            os.replace(temporary, path)

    def issue_tokens(self) -> dict[str, str]:
        """A fresh pair for the test user, as if consent had just been given."""
        with self.lock:
            self._counters.tokens_issued += 1
            pair = self._tokens.issue(self.exact_clock.now(), self._lifetimes())
            self._keep_tokens()
            return pair

    def issue_code(self, redirect_uri: str | None = None) -> str:
        with self.lock:
            code = self._tokens.issue_code(self.exact_clock.now(), redirect_uri)
            self._keep_tokens()
            return code

    def authorize(self, client_id: str, redirect_uri: str, response_type: str = "code") -> str | None:
        """GET /api/oauth2/auth for the test user: a code, None when consent is denied. LookupError for an
        unknown client_id, ValueError for a missing redirect_uri or another response_type."""
        with self.lock:
            if client_id != self._config.client_id:
                self._counters.authorize_refused += 1
                raise LookupError(client_id)
            if not redirect_uri or response_type != "code":
                raise ValueError("redirect_uri and response_type=code are required")
            if self._config.deny_consent:
                self._counters.consents_denied += 1
                return None
            self._counters.consents_given += 1
            code = self._tokens.issue_code(self.exact_clock.now(), redirect_uri)
            self._keep_tokens()
            return code

    def revoke_refresh_tokens(self) -> int:
        with self.lock:
            revoked = self._tokens.revoke_refresh_tokens()
            self._keep_tokens()
            return revoked

    def token_request(self, form: dict[str, str], client_id: str | None, client_secret: str | None) -> dict[str, str]:
        """One POST /api/oauth2/token; raises TokenError with Exact's status and body when refused."""
        with self.lock:
            self._counters.token_requests += 1
            try:
                if (client_id, client_secret) != (self._config.client_id, self._config.client_secret):
                    raise TokenError(400, "invalid_client", "Invalid client credentials.", "invalid_client")
                grant = form.get("grant_type")
                now, life = self.exact_clock.now(), self._lifetimes()
                if grant == "refresh_token":
                    pair = self._tokens.refresh(form.get("refresh_token", ""), now, life)
                elif grant == "authorization_code":
                    pair = self._tokens.exchange_code(form.get("code", ""), form.get("redirect_uri"), now, life)
                else:
                    raise TokenError(400, "unsupported_grant_type", f"Unsupported grant_type {grant!r}.")
            except TokenError as refused:
                if refused.counter:
                    setattr(self._counters, refused.counter, getattr(self._counters, refused.counter) + 1)
                raise
            self._counters.tokens_issued += 1
            self._keep_tokens()
            return pair

    def access_status(self, token: str) -> str:
        with self.lock:
            status = self._tokens.access_status(token, self.exact_clock.now(), self._lifetimes())
            if status != "ok":
                self._counters.http_401 += 1
            return status

    # API budget and faults ---------------------------------------------------------------------------------
    def spend(self, division: int) -> Verdict:
        with self.lock:
            c, now = self._config, self.exact_clock.now()
            verdict = self._limiter.take(division, now, c.minutely_limit, c.daily_limit)
            bump(self._counters.api_calls if verdict.allowed else self._counters.http_429, division)
            if not verdict.allowed:
                window = day_window(now) if verdict.which == "daily" else minute_window(now)
                bump(self._counters.http_429_per_window.setdefault(division, {}), window)
            return verdict

    def burst(self, division: int) -> dict[str, str] | None:
        """Headers for an injected 429 while `division` has burst 429s left, else None."""
        with self.lock:
            used = self._burst_used.get(division, 0)
            if used >= self._config.burst_429:
                return None
            self._burst_used[division] = used + 1
            bump(self._counters.burst_429_sent, division)
            if not self._config.burst_429_headers:
                return {}
            return burst_headers(self.exact_clock.now(), self._config.minutely_limit)

    def inject_fault(self, division: int | None = None) -> bool:
        with self.lock:
            if self._config.error_rate > 0 and self._faults.random() < self._config.error_rate:
                self._counters.faults_injected += 1
                if division is not None:
                    bump(self._counters.http_5xx, division)
                return True
            return False

    def record_client_error(self, division: int, endpoint: str | None = None) -> None:
        """Count a 400/401/403/404; with an endpoint it also counts toward Exact's error limit."""
        with self.lock:
            bump(self._counters.http_4xx, division)
            if endpoint is None:
                return
            until = self._errors.record((division, endpoint), self.exact_clock.now(), self._config.error_limit_per_hour)
            if until is not None:
                bump(self._counters.error_limit_blocks, division)
                self._counters.error_limit_blocked_until.setdefault(division, {})[endpoint] = until

    def blocked_until(self, division: int, endpoint: str) -> float | None:
        """When the error-limit block on (division, endpoint) lifts, else None. Counts refused calls."""
        with self.lock:
            until = self._errors.blocked_until((division, endpoint), self.exact_clock.now())
            if until is not None:
                bump(self._counters.error_limit_blocked, division)
            return until

    def count_write(self, division: int) -> None:
        with self.lock:
            bump(self._counters.writes, division)

    def take_write_timeout(self) -> bool:
        """True (and one fewer left) while the `store_then_timeout` fault has writes to delay."""
        with self.lock:
            if self._config.store_then_timeout <= 0:
                return False
            self._config = dataclasses.replace(self._config, store_then_timeout=self._config.store_then_timeout - 1)
            return True

    def division_access(self, division: int) -> bool:
        return division in self.divisions and division not in self._config.restricted_divisions

    # sync reads --------------------------------------------------------------------------------------------
    def sync_page(
        self,
        division: int,
        entity: SyncEntity,
        select: list[str],
        after_ts: int,
        after_seq: int,
        uri_prefix: str,
        limit: int | None = None,
    ) -> Page:
        with self.lock:
            size = min(limit or self._config.page_size, self._config.page_size)
            return sync_page(self.divisions[division], entity, select, after_ts, after_seq, size, uri_prefix)

    def catalog_sync_page(
        self,
        division: int,
        store: EntityStore,
        select: list[str],
        after_ts: int,
        after_seq: int,
        uri: str,
        limit: int | None,
    ) -> Page:
        with self.lock:
            size = min(limit or self._config.page_size, self._config.page_size)
            return catalog_page(store, select, after_ts, after_seq, size, uri)

    def standard_page(
        self, store: EntityStore, select: list[str], modified_from: datetime | None, skip: int
    ) -> tuple[list[Record], int | None]:
        """A standard endpoint's page (at most 60 rows, in key order) and the offset of the next, if any."""
        with self.lock:
            key = key_field(store.entity)
            records = sorted(store.records.values(), key=lambda record: str(record[key]))
            if modified_from is not None:
                records = [r for r in records if r.get("Modified") and parse_exact(r["Modified"]) >= modified_from]
            size = min(STANDARD_PAGE_SIZE, self._config.page_size)
            page = [{name: record.get(name) for name in select} for record in records[skip : skip + size]]
            return page, (skip + size if skip + size < len(records) else None)

    def catalog_store(self, division: int, endpoint: str) -> EntityStore | None:
        with self.lock:
            return self._div(division).catalog.by_endpoint(endpoint)

    def create_record(self, division: int, entity: str, **fields: Any) -> Record:
        """Create a row of a generated entity (any fields; the key is made up when absent)."""
        with self.lock:
            store = self._div(division).catalog.store(entity)
            record = self._div(division).catalog.create(entity, fields, self.exact_clock.now())
        self._publish_record(division, store, "Create", str(record[key_field(store.entity)]))
        return record

    def update_record(self, division: int, entity: str, key: str, **fields: Any) -> Record:
        with self.lock:
            store = self._div(division).catalog.store(entity)
            record = self._div(division).catalog.update(entity, key, fields, self.exact_clock.now())
        self._publish_record(division, store, "Update", key)
        return record

    def delete_record(self, division: int, entity: str, key: str) -> Record:
        """Delete a row; entities with a deletion EntityType get their sync/Deleted row."""
        with self.lock:
            store = self._div(division).catalog.store(entity)
            record = self._div(division).catalog.delete(entity, key, self.exact_clock.now())
        self._publish_record(division, store, "Delete", key)
        return record

    def _publish_record(self, division: int, store: EntityStore, action: str, key: str) -> None:
        if store.entity.topic is not None:
            self.publish_webhook(division, store.entity.topic, action, key)

    def records(self, division: int, entity: str) -> list[Record]:
        with self.lock:
            return [dict(r) for r in self._div(division).catalog.store(entity).records.values()]

    # data: the Python API that tests and the control endpoints use -------------------------------------
    def _div(self, division: int) -> DivisionData:
        try:
            return self.divisions[int(division)]
        except KeyError:
            raise KeyError(f"unknown division {division}") from None

    def create_account(self, division: int, **fields: Any) -> Record:
        with self.lock:
            record = self._div(division).create_account(fields, self.exact_clock.now())
        self.publish_webhook(division, "Accounts", "Create", record["ID"])
        return record

    def update_account(self, division: int, id: str, **fields: Any) -> Record:
        with self.lock:
            record = self._div(division).update_account(id, fields, self.exact_clock.now())
        self.publish_webhook(division, "Accounts", "Update", id)
        return record

    def delete_account(self, division: int, id: str) -> Record:
        with self.lock:
            record = self._div(division).delete_account(id, self.exact_clock.now())
        self.publish_webhook(division, "Accounts", "Delete", id)
        return record

    def create_invoice(self, division: int, header: dict[str, Any], lines: list[dict[str, Any]]) -> Record:
        with self.lock:
            record = self._div(division).create_invoice(header, lines, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Create", record["InvoiceID"])
        return record

    def add_invoice_line(self, division: int, invoice_id: str, **fields: Any) -> Record:
        with self.lock:
            record = self._div(division).add_invoice_line(invoice_id, fields, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Update", invoice_id)
        return record

    def update_invoice(self, division: int, invoice_id: str, header_fields: dict[str, Any]) -> Record:
        with self.lock:
            record = self._div(division).update_invoice(invoice_id, header_fields, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Update", invoice_id)
        return record

    def update_invoice_line(self, division: int, line_id: str, **fields: Any) -> Record:
        with self.lock:
            record = self._div(division).update_invoice_line(line_id, fields, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Update", record["InvoiceID"])
        return record

    def delete_invoice(self, division: int, invoice_id: str) -> Record:
        with self.lock:
            record = self._div(division).delete_invoice(invoice_id, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Delete", invoice_id)
        return record

    def delete_invoice_line(self, division: int, line_id: str) -> Record:
        with self.lock:
            data = self._div(division)
            invoice_id = str(data.lines[line_id]["InvoiceID"]) if line_id in data.lines else ""
            record = data.delete_invoice_line(line_id, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Update", invoice_id)
        return record

    # webhooks (syncs/sandbox/webhooks.py) -----------------------------------------------------------------
    def subscribe_webhook(self, division: int, callback_url: str, topic: str) -> dict[str, Any]:
        """POST webhooks/WebhookSubscriptions; ValueError as Exact's 400."""
        return dataclasses.asdict(self.webhooks.subscribe(division, callback_url, topic, self.exact_clock.now()))

    def publish_webhook(self, division: int, topic: str, action: str, key: str) -> int:
        """Deliver one change event to the division's subscriptions of `topic`, as configured (bad signature,
        duplicates); returns the POSTs queued."""
        c = self._config
        secret = "not-" + c.webhook_secret if c.webhook_bad_signature else c.webhook_secret
        return self.webhooks.publish(division, topic, action, key, self.exact_clock.now(), secret, c.webhook_duplicates)

    def accounts(self, division: int) -> list[Record]:
        with self.lock:
            return [dict(r) for r in self._div(division).accounts.values()]

    def invoice(self, division: int, invoice_id: str) -> Record:
        with self.lock:
            return self._div(division).invoice_view(invoice_id)

    def invoices(self, division: int) -> list[Record]:
        """Headers with their lines under "Lines"."""
        with self.lock:
            div = self._div(division)
            return [div.invoice_view(i) for i in div.invoices]

    def invoice_lines(self, division: int) -> list[Record]:
        """What sync/SalesInvoice/SalesInvoices serves: a row per line, header fields repeated, no quirks."""
        with self.lock:
            return self._div(division).invoice_rows(sorted(INVOICE_ROW_FIELDS))

    def deleted(self, division: int) -> list[Record]:
        with self.lock:
            return [dict(r) for r in self._div(division).deletions.values()]

    def generate(
        self, division: int, accounts: int = 20000, invoices: int = 25000, lines_per_invoice: int = 4
    ) -> dict[str, int]:
        """Fast bulk seeding for benchmarks (25,000 invoices x 4 lines in a few seconds)."""
        with self.lock:
            return generate_data(self._div(division), self.exact_clock.now(), accounts, invoices, lines_per_invoice)
