from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost
from orchestrator_core.records import SQLiteStore
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin

MakeOrchestrator = Callable[..., "Orchestrator"]


@pytest.fixture
async def make_orchestrator(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Builds started orchestrators over scripted plugins; closes them after the test."""
    made: list[Orchestrator] = []

    async def make(
        backend: ScriptedBackend | None = None,
        *checks: ScriptedCheck,
        **overrides: object,
    ) -> Orchestrator:
        host = PluginHost()
        host.register(ScriptedPlugin(backend or ScriptedBackend(), *checks), name="scripted-plugin")
        host.collect()
        values: dict[str, object] = {
            "councils": {"DEV": CouncilSettings(backend="scripted", agents=3),
                         "ARCHITECT": CouncilSettings(backend="scripted", agents=1)},
            "database_path": tmp_path / f"records-{len(made)}.sqlite3",
        }
        values.update(overrides)
        orchestrator = Orchestrator(Settings(**values), host, SQLiteStore(values["database_path"]))  # type: ignore[arg-type]
        await orchestrator.start()
        made.append(orchestrator)
        return orchestrator

    yield make
    for orchestrator in made:
        await orchestrator.close()


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
