from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from core_support import MakeOrchestrator, started_orchestrators

from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import Settings


@pytest.fixture
async def make_orchestrator(tmp_path: Path) -> AsyncIterator[MakeOrchestrator]:
    """Builds started orchestrators over scripted plugins, each on a SQLite file of its own;
    closes them after the test."""
    async with started_orchestrators(lambda n: {"database_path": tmp_path / f"records-{n}.sqlite3"}) as make:
        yield make


# -- record stores: every store test runs on SQLite and on PostgreSQL -------------------

POSTGRES_URL = os.environ.get("ORCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
"""The PostgreSQL server the record tests use. Unreachable means those tests fail, not skip."""


def schema_url(base: str, schema: str) -> str:
    """``base`` with its search_path set to ``schema`` (libpq's ``options`` parameter)."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL of the test PostgreSQL database whose tables land in a fresh schema of their own,
    dropped after the test, so runs (parallel or repeated) never see each other's rows."""
    import psycopg

    schema = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(POSTGRES_URL, schema)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A records database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
async def make_store(database_url: str) -> AsyncIterator[Callable[[], Awaitable[DeliberationStore]]]:
    """Opens stores on the test's database (several share it, like replicas); closes them after."""
    opened: list[DeliberationStore] = []

    async def make() -> DeliberationStore:
        store = store_from_settings(Settings(database_url=database_url))
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
