"""sync_cursors.resume_url and pending_timestamp: an unfinished enumeration's resume point

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sync_cursors", sa.Column("resume_url", sa.Text(), nullable=True))
    op.add_column("sync_cursors", sa.Column("pending_timestamp", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_cursors", "pending_timestamp")
    op.drop_column("sync_cursors", "resume_url")
