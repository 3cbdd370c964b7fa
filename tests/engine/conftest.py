from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models import Connection


@pytest.fixture
def connection_id(db: sessionmaker[Session]) -> int:
    with db.begin() as session:
        connection = Connection(name="engine-test", region="nl")
        session.add(connection)
        session.flush()
        return connection.id
