"""connections.webhook_auto_subscribe: the last automatic webhook subscription's time and outcome (`status`)

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("webhook_auto_subscribe", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("connections", "webhook_auto_subscribe")
