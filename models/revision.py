"""Generate the Alembic migration for changed declarations: `python -m models.revision "add cost centers"`.

Creates a scratch database (from DATABASE_URL's server), upgrades it to the newest revision, lets Alembic's
autogenerate compare it with the tables the declarations build, writes the new revision file under
models/migrations/versions and drops the scratch database. Review the file (data migrations are yours to add).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from models.migrate import alembic_config, upgrade_to_head

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/exact_sync"


def generate(message: str, server_url: str) -> Path | None:
    scratch = make_url(server_url).set(database=f"exact_sync_revision_{uuid.uuid4().hex[:8]}")
    url = scratch.render_as_string(hide_password=False)
    admin = create_engine(make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        upgrade_to_head(url)
        config = alembic_config(url)
        head = ScriptDirectory.from_config(config).get_current_head() or "0"
        rev_id = f"{int(head) + 1:04d}" if head.isdigit() else None
        script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        return None if script is None or isinstance(script, list) else Path(script.path)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit('usage: python -m models.revision "what changed"')
    written = generate(sys.argv[1], os.environ.get("DATABASE_URL", DEFAULT_URL))
    print(f"wrote {written}")
