"""connection_tokens.refresh_token_hash (a refresh token stored twice is found by keyed hash) and
connections.import_id (an export file is imported once)

Existing rows get their hash from `exact-sync keys rotate`, which `exact-sync migrate` runs when
TOKEN_ENCRYPTION_KEY is set (a migration has no key to hash with).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("connection_tokens", sa.Column("refresh_token_hash", sa.LargeBinary(), nullable=True))
    op.create_index("ix_connection_tokens_refresh_token_hash", "connection_tokens", ["refresh_token_hash"])
    op.add_column("connections", sa.Column("import_id", sa.String(64), nullable=True))
    op.create_unique_constraint("uq_connections_import_id", "connections", ["import_id"])


def downgrade() -> None:
    op.drop_constraint("uq_connections_import_id", "connections")
    op.drop_column("connections", "import_id")
    op.drop_index("ix_connection_tokens_refresh_token_hash", "connection_tokens")
    op.drop_column("connection_tokens", "refresh_token_hash")
