"""The records schema, as ordered migrations per SQL dialect.

A small ``schema_version`` table says which migrations a database has; at startup a store
applies the missing ones in order, each in the transaction that records it. The PostgreSQL
store takes a transaction-scoped advisory lock first, so replicas starting at once apply
each migration exactly once. (Two tables do not justify SQLAlchemy and Alembic: the SQL is
short, and the dialects differ in little more than a column type.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from orchestrator_core.errors import RecordsUnavailable

Dialect = Literal["sqlite", "postgresql"]

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version INTEGER PRIMARY KEY,"
    " applied_at {real} NOT NULL)"
)


def _v1(real: str) -> tuple[str, ...]:
    return (
        "CREATE TABLE deliberations ("
        " deliberation_id TEXT PRIMARY KEY,"
        " request_key TEXT UNIQUE,"  # the client's request_id, while this record holds it
        " fingerprint TEXT NOT NULL DEFAULT '',"
        " kind TEXT NOT NULL,"
        " role TEXT NOT NULL,"
        " status TEXT NOT NULL,"
        " owner TEXT NOT NULL,"
        f" created_at {real} NOT NULL,"
        f" updated_at {real} NOT NULL,"
        f" finished_at {real},"
        " error TEXT NOT NULL DEFAULT '',"
        " document TEXT NOT NULL)",
        "CREATE INDEX deliberations_listing ON deliberations (created_at DESC, deliberation_id)",
        "CREATE INDEX deliberations_role ON deliberations (role, created_at DESC)",
        "CREATE INDEX deliberations_running ON deliberations (owner) WHERE status = 'running'",
        "CREATE TABLE replicas ("
        " owner TEXT PRIMARY KEY,"
        f" started_at {real} NOT NULL,"
        f" heartbeat_at {real} NOT NULL)",
    )


def _v2() -> tuple[str, ...]:
    """Queued deliberations: ``queued`` marks a record a work queue carries (its lapsed owner
    is left for the queue to deliver again); ``cancel_requested`` is a cancel asked while it
    runs, a column of its own so the runner's writes of the document never clear it."""
    return (
        "ALTER TABLE deliberations ADD COLUMN queued INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE deliberations ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
    )


_REAL: dict[Dialect, str] = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}


def version_table(dialect: Dialect) -> str:
    return VERSION_TABLE.format(real=_REAL[dialect])


def migrations(dialect: Dialect) -> Sequence[tuple[int, tuple[str, ...]]]:
    """``(version, statements)`` in the order they apply."""
    real = _REAL[dialect]
    return ((1, _v1(real)), (2, _v2()))


LATEST_VERSION = max(version for version, _ in migrations("sqlite"))


def check_not_newer(current: int, where: str) -> None:
    """Refuse a database a newer build has migrated: this one would misread it."""
    if current > LATEST_VERSION:
        raise RecordsUnavailable(
            f"the records schema in {where} is at version {current}, newer than this build's "
            f"{LATEST_VERSION}; upgrade the service"
        )
