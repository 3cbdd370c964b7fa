"""The declarations, the migrations and the README agree, and the catalog covers what users expect."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from models import complete_metadata
from syncs.core.db import engine_for
from syncs.entities import schema_doc
from syncs.entities.catalog import CATALOG, TABLES

README = Path(__file__).resolve().parents[2] / "README.md"
EXPECTED_TABLES = {
    "accounts", "contacts", "addresses", "items", "item_groups", "gl_accounts", "gl_classifications", "journals",
    "vat_codes", "transaction_lines", "financial_transactions", "sales_invoices", "sales_invoice_lines",
    "sales_orders", "sales_order_lines", "quotations", "quotation_lines", "purchase_orders", "purchase_order_lines",
    "purchase_entries", "goods_deliveries", "goods_delivery_lines", "payment_terms", "payments", "receivables",
    "documents", "document_attachments", "sales_item_prices", "projects", "time_transactions", "employees",
    "stock_positions", "cost_centers", "bank_accounts", "exact_divisions",
}  # fmt: skip


def test_migrations_match_the_declarations(database_url: str) -> None:
    """Fails when a declaration changed without a migration: run `python -m models.revision "..."`."""
    with engine_for(database_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), complete_metadata())
    assert diff == []


def test_the_catalog_covers_the_expected_tables() -> None:
    assert set(TABLES) >= EXPECTED_TABLES


def test_every_entity_column_names_its_exact_field(database_url: str) -> None:
    with engine_for(database_url).connect() as conn:
        for decl in TABLES.values():
            found: dict[str, str | None] = dict(
                conn.execute(
                    text(
                        "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a"
                        " WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped"
                    ),
                    {"t": decl.name},
                ).all()
            )
            for field in decl.fields:
                if field.column != "modified":
                    assert found[field.column] == f"Exact {field.exact}", (decl.name, field.column)


def test_readme_schema_section_is_generated_from_the_declarations() -> None:
    """Fails when the README was not regenerated: run `python -m syncs.entities.schema_doc`."""
    assert schema_doc.markdown() in README.read_text(encoding="utf-8")


def test_every_sync_entity_declares_its_deletions() -> None:
    """A sync entity without an EntityType would never see deletions (unless it is a snapshot)."""
    for entity in CATALOG.values():
        assert entity.deleted_types or entity.strategy != "sync", entity.name
        assert entity.source, entity.name
