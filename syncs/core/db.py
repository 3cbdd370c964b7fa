"""Engines and sessions. The caller owns the transaction: a page's upsert and its cursor commit together."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def session_factory(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(database_url), expire_on_commit=False)
