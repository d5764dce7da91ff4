"""Deliberation records, kept in a local SQLite file by default.

Records are stored as one JSON document each (pydantic serialises the domain dataclasses),
beside the columns that queries filter on. SQLite calls run in a worker thread, so the
event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import TypeAdapter

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import DeliberationOutcome, Selection, Task

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class RecordStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class DeliberationRecord:
    deliberation_id: str
    kind: str
    role: str
    task: Task
    status: RecordStatus
    created_at: float
    finished_at: float | None = None
    outcome: DeliberationOutcome | None = None
    selection: Selection | None = None
    error: str = ""
    request_id: str = ""

    def finished(self, status: RecordStatus, at: float, **changes: object) -> DeliberationRecord:
        return replace(self, status=status, finished_at=at, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RecordPage:
    records: tuple[DeliberationRecord, ...]
    next_page_token: str


class DeliberationStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def put(self, record: DeliberationRecord) -> None: ...
    async def get(self, deliberation_id: str) -> DeliberationRecord | None: ...
    async def list(
        self, *, role: str, status: RecordStatus | None, page_size: int, page_token: str
    ) -> RecordPage: ...


_RECORD = TypeAdapter(DeliberationRecord)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliberations (
    deliberation_id TEXT PRIMARY KEY,
    request_id TEXT,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliberations_created ON deliberations (created_at DESC, deliberation_id);
"""


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        prefix, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest("page_token is not one this server issued") from None
    if prefix != "offset" or offset < 0:
        raise InvalidRequest("page_token is not one this server issued")
    return offset


def page_size_of(requested: int) -> int:
    if requested < 0:
        raise InvalidRequest(f"page_size must not be negative (got {requested})")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class SQLiteStore:
    """Records in one SQLite file (WAL), written from a single worker thread at a time."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self._path.parent != Path():
            self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        self._connection = connection

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(connection.close)

    async def put(self, record: DeliberationRecord) -> None:
        document = _RECORD.dump_json(record).decode()
        await self._run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO deliberations VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.deliberation_id,
                    record.request_id or None,
                    record.kind,
                    record.role,
                    record.status.value,
                    record.created_at,
                    document,
                ),
            )
        )

    async def get(self, deliberation_id: str) -> DeliberationRecord | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT record FROM deliberations WHERE deliberation_id = ?", (deliberation_id,)
            ).fetchone()
        )
        return _RECORD.validate_json(row[0]) if row else None

    async def list(
        self, *, role: str, status: RecordStatus | None, page_size: int, page_token: str
    ) -> RecordPage:
        offset = decode_page_token(page_token)
        limit = page_size_of(page_size)
        where, params = [], []
        if role:
            where.append("role = ?")
            params.append(role)
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT record FROM deliberations {clause} "
            "ORDER BY created_at DESC, deliberation_id LIMIT ? OFFSET ?"
        )
        rows = await self._run(lambda c: c.execute(sql, (*params, limit + 1, offset)).fetchall())
        records = tuple(_RECORD.validate_json(row[0]) for row in rows[:limit])
        next_token = encode_page_token(offset + limit) if len(rows) > limit else ""
        return RecordPage(records=records, next_page_token=next_token)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            if self._connection is None:
                raise RuntimeError("the record store is not open")
            with self._lock:
                return work(self._connection)

        return await asyncio.to_thread(locked)
