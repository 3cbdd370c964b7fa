"""What the throughput benchmark runs against: its data set, the in-process sandbox, a fresh database and the
connections registered in it, plus the row counts every phase is checked with."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet
from pydantic import SecretStr
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from syncs.core.clock import SYSTEM_CLOCK
from syncs.core.crypto import TokenCipher
from syncs.core.db import engine_for
from syncs.core.settings import Settings
from syncs.lifecycle.connections import add_connection, ensure_division
from syncs.sandbox.seed import FIRST_DIVISION, SECOND_DIVISION
from syncs.sandbox.state import SandboxConfig, SandboxState
from syncs.tokens.pair import TokenPair
from syncs.tokens.store import TokenStore

DIVISION = FIRST_DIVISION  # the full data set
HALF_DIVISION = SECOND_DIVISION  # half of it, for the second memory point
WARMUP_DIVISION = SECOND_DIVISION + 1  # a little data to warm every cache up before anything is measured
MEMORY_DIVISION = SECOND_DIVISION + 2  # --memory-records: a large data set, synced once for its memory use
MEMORY_CONNECTION = "bench-memory"
MAIN_CONNECTION = "bench"
HALF_CONNECTION = "bench-half"
WARMUP_CONNECTION = "bench-warmup"
REGION = "nl"
# The mixed catalog (issue 8): beside accounts and sales invoices (a header/line feed), master data through the
# sync API (items), a feed of one header row and two lines per entry filling two tables (transaction lines and
# financial transactions) and a snapshot reference list (VAT codes, read whole each run).
CATALOG_MIX = ("items", "transaction_lines", "vat_codes")
BENCH_ENTITIES = ("accounts", "sales_invoices", *CATALOG_MIX)
# Where each entity's records land (a record = a row read from the API): invoice rows are lines; a transaction
# line feed's header rows land in financial_transactions, the others in transaction_lines.
RECORD_TABLES = (
    "accounts", "sales_invoice_lines", "items", "transaction_lines", "financial_transactions", "vat_codes",
)  # fmt: skip
SYNCED_TABLES = (*RECORD_TABLES, "sales_invoices")


class TokenIssuer(Protocol):
    """The sandbox in this process (SandboxState) or in its own (bench.sandbox_process.SandboxProcess)."""

    def issue_tokens(self) -> dict[str, Any]: ...


class BenchmarkError(RuntimeError):
    """The benchmark could not run or its row counts did not add up."""


@dataclass(frozen=True)
class BenchOptions:
    accounts: int = 20_000
    invoices: int = 25_000
    lines_per_invoice: int = 4
    naive_records: int = 20_000  # records for the naive loader; 0 = all
    page_size: int = 1000  # sandbox page size (Exact's is 1000)
    page_latency: float = 0.3  # seconds the sandbox waits before each answer in the latency phases
    database: str = "exact_sync_bench"
    keep_database: bool = False
    memory_records: int = 0  # > 0: also sync about this many records once and report the memory growth
    items: int = 4_000
    transaction_lines: int = 12_000  # rows of the feed: a header row and two lines per entry
    vat_codes: int = 100

    @property
    def catalog_rows(self) -> dict[str, int]:
        """Rows of the rest of the mixed catalog, by entity."""
        return {"items": self.items, "transaction_lines": self.transaction_lines, "vat_codes": self.vat_codes}

    @property
    def stream_sizes(self) -> list[int]:
        """Records per entity, in BENCH_ENTITIES' order."""
        return [self.accounts, self.invoices * self.lines_per_invoice, *self.catalog_rows.values()]

    @property
    def records(self) -> int:
        return sum(self.stream_sizes)

    @property
    def half_records(self) -> int:
        """Records in the half data set (division HALF_DIVISION)."""
        halves = sum(rows // 2 for rows in self.catalog_rows.values())
        return self.accounts // 2 + self.invoices // 2 * self.lines_per_invoice + halves


QUICK = BenchOptions(
    accounts=2_000, invoices=2_500, naive_records=2_000, page_latency=0.05, items=400, transaction_lines=1_200,
    vat_codes=20,
)  # fmt: skip


# -- sandbox -------------------------------------------------------------------------------------------------


def sandbox_config(options: BenchOptions) -> SandboxConfig:
    """Rate limits off, no seed data, and a division for the warm-up sync."""
    return SandboxConfig(
        minutely_limit=None,
        daily_limit=None,
        seed=False,
        page_size=options.page_size,
        extra_divisions=((WARMUP_DIVISION, "Warm-up"), (MEMORY_DIVISION, "Memory")),
    )


def generate_data(state: SandboxState, options: BenchOptions) -> None:
    """The full data set, half of it in HALF_DIVISION and a little in WARMUP_DIVISION."""
    state.generate(DIVISION, options.accounts, options.invoices, options.lines_per_invoice)
    state.generate_catalog(DIVISION, options.catalog_rows)
    state.generate(HALF_DIVISION, options.accounts // 2, options.invoices // 2, options.lines_per_invoice)
    state.generate_catalog(HALF_DIVISION, {name: rows // 2 for name, rows in options.catalog_rows.items()})
    state.generate(WARMUP_DIVISION, min(options.accounts, 500), min(options.invoices, 250), options.lines_per_invoice)
    state.generate_catalog(WARMUP_DIVISION, {name: min(rows, 150) for name, rows in options.catalog_rows.items()})
    if options.memory_records > 0:
        accounts, invoices, lines = memory_sizes(options.memory_records)
        state.generate(MEMORY_DIVISION, accounts, invoices, lines)


def memory_sizes(records: int) -> tuple[int, int, int]:
    """Accounts, invoices and lines per invoice of the memory data set: a fifth accounts, the rest invoice lines."""
    accounts = max(2, records // 5)
    return accounts, max(2, (records - accounts) // 4), 4


# -- database and connections --------------------------------------------------------------------------------


def bench_settings(base: Settings, sandbox_url: str, database: str, config: SandboxConfig) -> Settings:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
        raise BenchmarkError(f"unsuitable benchmark database name {database!r}")
    url = make_url(base.database_url).set(database=database).render_as_string(hide_password=False)
    return base.model_copy(
        update={
            "database_url": url,
            "exact_base_url": sandbox_url,
            "exact_client_id": config.client_id,
            "exact_client_secret": SecretStr(config.client_secret),
            "token_encryption_key": SecretStr(Fernet.generate_key().decode()),
            "redis_key_prefix": f"exact-sync-bench-{uuid.uuid4().hex[:8]}",
        }
    )


def _admin_execute(database_url: str, sql: str) -> None:
    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def drop_database(database_url: str) -> None:
    engine_for(database_url).dispose()
    _admin_execute(database_url, f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)')


def delete_redis_keys(redis_client: Redis[Any], prefix: str) -> None:
    keys = list(redis_client.scan_iter(match=f"{prefix}*"))
    if keys:
        redis_client.delete(*keys)


def register(sessions: sessionmaker[Session], settings: Settings, state: TokenIssuer, name: str, division: int) -> int:
    key = settings.token_encryption_key.get_secret_value() if settings.token_encryption_key else None
    tokens = state.issue_tokens()
    pair = TokenPair(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        received_at=SYSTEM_CLOCK.now(),
        expires_in=float(tokens["expires_in"]),
    )
    with sessions.begin() as session:
        return add_connection(session, TokenStore(sessions, TokenCipher(key)), name, REGION, pair, division).id


def worker_values(
    base: Settings, database_url: str, prefix: str, sandbox_url: str, config: SandboxConfig
) -> dict[str, Any]:
    """Settings (as field values, for other processes) aimed at a benchmark database and sandbox."""
    return {
        "database_url": database_url,
        "redis_url": base.redis_url,
        "redis_key_prefix": prefix,
        "celery_queue": prefix,
        "exact_base_url": sandbox_url,
        "exact_client_id": config.client_id,
        "exact_client_secret": config.client_secret,
        "token_encryption_key": Fernet.generate_key().decode(),
    }


def register_divisions(
    sessions: sessionmaker[Session], store: TokenStore, state: TokenIssuer, name: str, divisions: Sequence[int]
) -> None:
    """A connection syncing `divisions` (the first is its current one), with a pair the sandbox just issued."""
    tokens = state.issue_tokens()
    pair = TokenPair(tokens["access_token"], tokens["refresh_token"], time.time(), float(tokens["expires_in"]))
    with sessions.begin() as session:
        connection = add_connection(session, store, name, REGION, pair, divisions[0])
        for division in divisions[1:]:
            ensure_division(session, connection.id, division, is_current=False)


# -- row counts ----------------------------------------------------------------------------------------------


def count_rows(sessions: sessionmaker[Session], table: str) -> int:
    with sessions() as session:
        return int(session.scalar(text(f'SELECT count(*) FROM "{table}"')) or 0)


def records_in(sessions: sessionmaker[Session], prefix: str = "") -> int:
    """Records (rows read from the API) in the synced tables, or in their twins named with `prefix`: keys, not rows
    (an unkeyed twin holds a header once per page its entry's rows came in)."""
    with sessions() as session:
        return sum(
            int(
                session.scalar(text(f'SELECT count(*) FROM (SELECT DISTINCT division, id FROM "{prefix}{table}") k'))
                or 0
            )
            for table in RECORD_TABLES
        )


def empty_synced_tables(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.execute(text(f"TRUNCATE {', '.join(SYNCED_TABLES)}"))
        session.execute(text("DELETE FROM sync_cursors"))


def expect(what: str, found: int, expected: int) -> None:
    if found != expected:
        raise BenchmarkError(f"{what}: {found} records, expected {expected}")


def print_report(report: str, output: Path | None) -> int:
    """Print a benchmark's report, also into `output` when given; the exit code."""
    print(report)
    if output:
        output.write_text(report + "\n")
    return 0
