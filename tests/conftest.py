"""Shared fixtures: a migrated database of this test session's own, a Redis key prefix of its own, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from models import complete_metadata
from models.migrate import upgrade_to_head
from syncs.core.db import engine_for, session_factory
from syncs.core.settings import Settings

pytest_plugins = ["tests.support.no_skips"]

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# A database of the tests' own (not 0, where applications usually live); every key a test creates carries its
# prefix or is named after it (Celery's queue = the prefix), so the cleanup below finds it.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SESSION_TAG = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _admin_execute(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"exact_sync_test_{SESSION_TAG}"
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    upgrade_to_head(url)
    yield url
    engine_for(url).dispose()
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(database_url: str) -> sessionmaker[Session]:
    """A session factory on an emptied database (only tables holding rows are truncated: with 40-odd synced
    tables, truncating every one costs about a second per test)."""
    with engine_for(database_url).begin() as conn:
        names = ",".join(t.name for t in complete_metadata().sorted_tables)
        conn.execute(text("SELECT set_config('exact_sync.test_tables', :names, true)"), {"names": f"{{{names}}}"})
        conn.execute(_EMPTY_TABLES)
    return session_factory(database_url)


_EMPTY_TABLES = text(
    """
    DO $$
    DECLARE
        name text;
        found boolean;
        used text[] := '{}';
        seq text;
    BEGIN
        FOREACH name IN ARRAY current_setting('exact_sync.test_tables')::text[] LOOP
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', name) INTO found;
            IF found THEN used := used || quote_ident(name); END IF;
        END LOOP;
        IF cardinality(used) > 0 THEN
            EXECUTE 'TRUNCATE ' || array_to_string(used, ', ') || ' CASCADE';
        END IF;
        FOR seq IN SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public' LOOP
            EXECUTE 'ALTER SEQUENCE ' || seq || ' RESTART';
        END LOOP;
    END $$
    """
)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"exact-sync-test-{SESSION_TAG}-{uuid.uuid4().hex[:6]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        clean_test_keys(client, prefix)
    finally:
        client.close()


def clean_test_keys(client: redis.Redis[bytes], prefix: str) -> None:
    """Every key a test made: ours and Celery's start with its prefix (`settings` gives Celery's keys the prefix
    through CELERY_KEY_PREFIX); kombu's binding of the test's queue (`_kombu.binding.<queue>`) contains it."""
    keys = list(client.scan_iter(match=f"*{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        celery_queue=redis_prefix,
        # Celery's own keys too (queues, unacknowledged messages, results, chord counters): with standard names
        # the results (`celery-task-meta-<id>`) carry no prefix and outlive the test.
        celery_key_prefix=f"{redis_prefix}:celery:",
        celery_consume_default_queue=False,  # Celery's default queue belongs to nobody in particular here
        exact_client_id="sandbox-client",
        exact_client_secret="sandbox-secret",
        token_encryption_key=Fernet.generate_key().decode(),
    )
