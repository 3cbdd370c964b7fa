"""actions: the ledger of writes to Exact (idempotency keys, states, Exact's answers)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("requested", "sent", "succeeded", "failed")


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("connection_id", sa.Integer(), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("division", sa.Integer(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("marker", sa.String(length=200), nullable=True),
        sa.Column("state", sa.Enum(*STATES, name="action_state"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("record_key", sa.String(length=64), nullable=True),
        sa.Column("answer", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("connection_id", "idempotency_key"),
    )
    op.create_index("ix_actions_connection_id", "actions", ["connection_id"])


def downgrade() -> None:
    op.drop_index("ix_actions_connection_id", table_name="actions")
    op.drop_table("actions")
    sa.Enum(name="action_state").drop(op.get_bind(), checkfirst=False)
