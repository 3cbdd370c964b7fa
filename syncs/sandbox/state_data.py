"""The sandbox's data side: sync and standard reads, generated entities' changes, accounts and invoices, the
documents actions write (syncs/sandbox/documents.py), and webhook events for each change."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from syncs.core.clock import Clock
from syncs.sandbox.catalog import EntityStore, key_field
from syncs.sandbox.config import SandboxConfig
from syncs.sandbox.dates import parse_exact
from syncs.sandbox.division import DivisionData, Record
from syncs.sandbox.documents import Shape
from syncs.sandbox.fields import INVOICE_ROW_FIELDS
from syncs.sandbox.generate import generate as generate_data
from syncs.sandbox.render import Page, SyncEntity, catalog_page, sync_page
from syncs.sandbox.webhooks import WebhookHub

STANDARD_PAGE_SIZE = 60  # Exact's page size on standard (non-sync, non-bulk) endpoints


class DataDesk:
    """Mixed into SandboxState (which sets these up); every method holds `lock`."""

    lock: threading.Lock
    exact_clock: Clock
    divisions: dict[int, DivisionData]
    webhooks: WebhookHub
    _config: SandboxConfig

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

    def update_record(
        self, division: int, entity: str, key: str, accept: tuple[str, ...] = (), **fields: Any
    ) -> Record:
        with self.lock:
            store = self._div(division).catalog.store(entity)
            record = self._div(division).catalog.update(entity, key, fields, self.exact_clock.now(), accept)
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
    def _change(
        self,
        division: int,
        topic: str,
        verb: str,
        key: str | Callable[[Record], str],
        change: Callable[[DivisionData, float], Record],
    ) -> Record:
        """One change to a division's data under the lock, then its webhook event (outside the lock)."""
        with self.lock:
            record = change(self._div(division), self.exact_clock.now())
        self.publish_webhook(division, topic, verb, key(record) if callable(key) else key)
        return record

    def _div(self, division: int) -> DivisionData:
        try:
            return self.divisions[int(division)]
        except KeyError:
            raise KeyError(f"unknown division {division}") from None

    def create_account(self, division: int, **fields: Any) -> Record:
        return self._change(division, "Accounts", "Create", lambda record: str(record["ID"]),
                            lambda data, now: data.create_account(fields, now))  # fmt: skip

    def update_account(self, division: int, id: str, **fields: Any) -> Record:
        return self._change(division, "Accounts", "Update", id, lambda data, now: data.update_account(id, fields, now))

    def delete_account(self, division: int, id: str) -> Record:
        return self._change(division, "Accounts", "Delete", id, lambda data, now: data.delete_account(id, now))

    def create_invoice(self, division: int, header: dict[str, Any], lines: list[dict[str, Any]]) -> Record:
        return self._change(division, "SalesInvoices", "Create", lambda record: str(record["InvoiceID"]),
                            lambda data, now: data.create_invoice(header, lines, now))  # fmt: skip

    def add_invoice_line(self, division: int, invoice_id: str, **fields: Any) -> Record:
        return self._change(division, "SalesInvoices", "Update", invoice_id,
                            lambda data, now: data.add_invoice_line(invoice_id, fields, now))  # fmt: skip

    def update_invoice(self, division: int, invoice_id: str, header_fields: dict[str, Any]) -> Record:
        return self._change(division, "SalesInvoices", "Update", invoice_id,
                            lambda data, now: data.update_invoice(invoice_id, header_fields, now))  # fmt: skip

    def update_invoice_line(self, division: int, line_id: str, **fields: Any) -> Record:
        return self._change(division, "SalesInvoices", "Update", lambda record: str(record["InvoiceID"]),
                            lambda data, now: data.update_invoice_line(line_id, fields, now))  # fmt: skip

    def delete_invoice(self, division: int, invoice_id: str) -> Record:
        return self._change(
            division, "SalesInvoices", "Delete", invoice_id, lambda data, now: data.delete_invoice(invoice_id, now)
        )

    def delete_invoice_line(self, division: int, line_id: str) -> Record:
        with self.lock:
            data = self._div(division)
            invoice_id = str(data.lines[line_id]["InvoiceID"]) if line_id in data.lines else ""
            record = data.delete_invoice_line(line_id, self.exact_clock.now())
        self.publish_webhook(division, "SalesInvoices", "Update", invoice_id)
        return record

    # documents that actions write (syncs/sandbox/documents.py) -------------------------------------------
    def create_document(self, division: int, shape: Shape, body: Record) -> Record:
        return self._change(division, shape.topic, "Create", lambda record: str(record[shape.key]),
                            lambda data, now: data.documents.create(shape, dict(body), now))  # fmt: skip

    def update_document(self, division: int, shape: Shape, key: str, fields: Record) -> Record:
        return self._change(
            division, shape.topic, "Update", key, lambda data, now: data.documents.update(shape, key, fields, now)
        )

    def documents(self, division: int, shape: Shape) -> list[Record]:
        """Every document of one type (generated ones too), as the standard endpoint answers them."""
        with self.lock:
            documents = self._div(division).documents
            return [documents.view(shape, key) for key in documents.keys(shape)]

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

    def generate_catalog(self, division: int, rows: Mapping[str, int]) -> None:
        """Bulk rows of other declared entities (`rows`: count by entity name), for benchmarks."""
        with self.lock:
            div = self._div(division)
            for name, count in rows.items():
                div.catalog.add_generated(name, count, list(div.accounts), self.exact_clock.now())
