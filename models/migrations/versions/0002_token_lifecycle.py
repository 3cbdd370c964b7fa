"""token lifecycle: refresh failure count, division checks, last sync per division

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "connection_tokens",
        sa.Column("refresh_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("connections", sa.Column("divisions_checked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "connections",
        sa.Column("divisions_chosen", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("divisions", sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("divisions", "last_synced_at")
    op.drop_column("connections", "divisions_chosen")
    op.drop_column("connections", "divisions_checked_at")
    op.drop_column("connection_tokens", "refresh_failures")
