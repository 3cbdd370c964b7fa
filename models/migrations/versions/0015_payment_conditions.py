"""payment conditions

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 01:54:14.083924
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_conditions",
        sa.Column(
            "division", sa.Integer(), autoincrement=False, nullable=False, comment="Exact division (company) code"
        ),
        sa.Column("id", sa.Uuid(), nullable=False, comment="Exact ID"),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=True, comment="Exact Modified (UTC)"),
        sa.Column(
            "timestamp", sa.BigInteger(), nullable=True, comment="Exact Timestamp (row version) where the feed has one"
        ),
        sa.Column(
            "deleted_at", sa.DateTime(timezone=True), nullable=True, comment="when Exact reported the record deleted"
        ),
        sa.Column(
            "raw",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the record as Exact sent it, without __metadata",
        ),
        sa.Column("synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("code", sa.Text(), nullable=True, comment="Exact Code"),
        sa.Column("description", sa.Text(), nullable=True, comment="Exact Description"),
        sa.Column("payment_days", sa.Integer(), nullable=True, comment="Exact PaymentDays"),
        sa.PrimaryKeyConstraint("division", "id", name=op.f("pk_payment_conditions")),
        comment="Payment conditions (the terms master data: code, description, days), not the installments.",
    )


def downgrade() -> None:
    op.drop_table("payment_conditions")
