"""sync_run_totals and sync_entity_totals, kept by a trigger on sync_runs: /metrics reads totals, not every run

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A run counts once, when it is recorded finished: inserted finished, or updated away from 'running'.
TRIGGER_FUNCTION = """
CREATE FUNCTION sync_runs_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'running' OR (TG_OP = 'UPDATE' AND OLD.status <> 'running') THEN
    RETURN NULL;
  END IF;
  INSERT INTO sync_run_totals AS t (connection_id, status, runs, api_calls)
  VALUES (NEW.connection_id, NEW.status, 1, NEW.api_calls)
  ON CONFLICT (connection_id, status)
  DO UPDATE SET runs = t.runs + 1, api_calls = t.api_calls + EXCLUDED.api_calls;
  IF NEW.status = 'succeeded' THEN
    INSERT INTO sync_entity_totals AS t (connection_id, entity, inserted, updated, deleted, last_success_at)
    SELECT NEW.connection_id, s.entity,
           coalesce((NEW.rows_by_entity -> s.entity ->> 'inserted')::bigint, 0),
           coalesce((NEW.rows_by_entity -> s.entity ->> 'updated')::bigint, 0),
           coalesce((NEW.rows_by_entity -> s.entity ->> 'deleted')::bigint, 0),
           NEW.finished_at
    FROM (SELECT unnest(NEW.entities) AS entity UNION SELECT jsonb_object_keys(NEW.rows_by_entity)) AS s
    ON CONFLICT (connection_id, entity) DO UPDATE SET
      inserted = t.inserted + EXCLUDED.inserted,
      updated = t.updated + EXCLUDED.updated,
      deleted = t.deleted + EXCLUDED.deleted,
      last_success_at = GREATEST(t.last_success_at, EXCLUDED.last_success_at);
  END IF;
  RETURN NULL;
END $$
"""

BACKFILL = [
    """
    INSERT INTO sync_run_totals (connection_id, status, runs, api_calls)
    SELECT connection_id, status, count(*), coalesce(sum(api_calls), 0)
    FROM sync_runs WHERE status <> 'running' GROUP BY connection_id, status
    """,
    """
    INSERT INTO sync_entity_totals (connection_id, entity, inserted, updated, deleted, last_success_at)
    SELECT r.connection_id, s.entity,
           coalesce(sum((r.rows_by_entity -> s.entity ->> 'inserted')::bigint), 0),
           coalesce(sum((r.rows_by_entity -> s.entity ->> 'updated')::bigint), 0),
           coalesce(sum((r.rows_by_entity -> s.entity ->> 'deleted')::bigint), 0),
           max(r.finished_at)
    FROM sync_runs r
    CROSS JOIN LATERAL (SELECT unnest(r.entities) AS entity UNION SELECT jsonb_object_keys(r.rows_by_entity)) AS s
    WHERE r.status = 'succeeded'
    GROUP BY r.connection_id, s.entity
    """,
]


def upgrade() -> None:
    op.create_table(
        "sync_run_totals",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("api_calls", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_sync_run_totals_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "status", name=op.f("pk_sync_run_totals")),
    )  # fmt: skip
    op.create_table(
        "sync_entity_totals",
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("inserted", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.BigInteger(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_sync_entity_totals_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "entity", name=op.f("pk_sync_entity_totals")),
    )  # fmt: skip
    op.create_index(
        "ix_sync_runs_running", "sync_runs", ["connection_id"], postgresql_where=sa.text("status = 'running'")
    )
    for statement in BACKFILL:
        op.execute(statement)
    op.execute(TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER sync_runs_totals AFTER INSERT OR UPDATE OF status ON sync_runs "
        "FOR EACH ROW EXECUTE FUNCTION sync_runs_totals()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER sync_runs_totals ON sync_runs")
    op.execute("DROP FUNCTION sync_runs_totals()")
    op.drop_index("ix_sync_runs_running", table_name="sync_runs")
    op.drop_table("sync_entity_totals")
    op.drop_table("sync_run_totals")
