"""synced tables keyed by (division, id): one company's rows can never overwrite another's

Existing rows keep their values: a unique `id` is also unique per `(division, id)`, so the new key is built in
place. The separate `division` indexes go (the key's leading column serves them) and invoice lines are found
by `(division, invoice_id)`.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("accounts", "sales_invoices", "sales_invoice_lines")


def upgrade() -> None:
    for table in TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["division", "id"])
        op.drop_index(f"ix_{table}_division", table_name=table)
    op.drop_index("ix_sales_invoice_lines_invoice_id", table_name="sales_invoice_lines")
    op.create_index("ix_sales_invoice_lines_division_invoice_id", "sales_invoice_lines", ["division", "invoice_id"])


def downgrade() -> None:
    """Back to `id` alone; fails (duplicate key) while one GUID is stored for two divisions."""
    op.drop_index("ix_sales_invoice_lines_division_invoice_id", table_name="sales_invoice_lines")
    op.create_index("ix_sales_invoice_lines_invoice_id", "sales_invoice_lines", ["invoice_id"])
    for table in TABLES:
        op.create_index(f"ix_{table}_division", table, ["division"])
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["id"])
