"""per-entity cadence: sync_cursors.checked_at and connection_entities (switches and intervals per connection)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_cursors", sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "connection_entities",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("every_minutes", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_connection_entities_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "entity", name=op.f("pk_connection_entities")),
    )


def downgrade() -> None:
    op.drop_table("connection_entities")
    op.drop_column("sync_cursors", "checked_at")
