"""Beat claims due connections through a partial index of active, unpaused connections' next_sync_at

Paused and inactive connections keep an old next_sync_at forever: with a plain index on next_sync_at, every tick
read them all and filtered them out (a 100,000-row connections table).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_connections_due",
        "connections",
        ["next_sync_at"],
        postgresql_where=sa.text("status = 'active' AND NOT paused"),
    )
    op.drop_index("ix_connections_next_sync_at", table_name="connections")


def downgrade() -> None:
    op.create_index("ix_connections_next_sync_at", "connections", ["next_sync_at"])
    op.drop_index("ix_connections_due", table_name="connections")
