"""The record store the settings name: a PostgreSQL URL, or else the SQLite file."""

from __future__ import annotations

from pathlib import Path

from orchestrator_core.errors import RecordsUnavailable
from orchestrator_core.records.sqlite import SQLiteStore
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import Settings

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_SCHEME = "sqlite:///"


def store_from_settings(settings: Settings) -> DeliberationStore:
    """``ORCH_DATABASE_URL`` when set (``postgresql://…`` or ``sqlite:///path``), else the
    SQLite file ``ORCH_DATABASE_PATH``. The store is not open yet."""
    url = settings.database_url.get_secret_value().strip() if settings.database_url else ""
    if not url:
        return SQLiteStore(settings.database_path, shared=settings.processes > 1)
    if url.startswith(_POSTGRES_SCHEMES):
        from orchestrator_core.records.postgres import PostgresStore

        return PostgresStore(
            url, pool_size=settings.database_pool_size, connect_timeout=settings.database_connect_timeout_seconds
        )
    if url.startswith(_SQLITE_SCHEME):
        return SQLiteStore(Path(url.removeprefix(_SQLITE_SCHEME)), shared=settings.processes > 1)
    scheme = url.partition(":")[0]
    raise RecordsUnavailable(
        f"ORCH_DATABASE_URL has scheme {scheme!r}; use postgresql://user@host:5432/database or sqlite:///path"
    )
