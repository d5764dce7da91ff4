"""What the SQL record stores share: the table's statements, how a record becomes a row and
back, and the methods that differ between SQLite and PostgreSQL only in how a statement runs.

A record is one row: the columns that queries filter and update on, and the whole record
as a JSON document (pydantic serialises the domain dataclasses). ``status``,
``finished_at``, ``error``, ``owner`` and ``cancel_requested`` live in columns and win over
the document, so a sweep can mark a record interrupted, a worker take a queued record over
and a client ask a running one to stop, each with one UPDATE that leaves the document alone.

SQL here uses ``?`` placeholders; the PostgreSQL store turns them into ``%s``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import TypeAdapter

from orchestrator_core.records.model import (
    RETRYABLE_STATUSES,
    DeliberationRecord,
    RecordPage,
    RecordQuery,
    RecordStatus,
)
from orchestrator_core.records.paging import decode_page_token, page_of, page_size_of

INTERRUPTED_KIND = "Interrupted"
INTERRUPTED_ERROR = "interrupted: the server process running it stopped before it finished"

RECORD_ADAPTER: TypeAdapter[DeliberationRecord] = TypeAdapter(DeliberationRecord)

CANCELLED_KIND = "Cancelled"
CANCELLED_ERROR = "cancelled"

COLUMNS = (
    "deliberation_id, request_key, fingerprint, kind, role, status, owner, "
    "created_at, updated_at, finished_at, error, document, queued, cancel_requested"
)
RECORD_COLUMNS = "status, finished_at, error, document, owner, cancel_requested"
SELECT_RECORD = f"SELECT {RECORD_COLUMNS} FROM deliberations"
INSERT_RECORD = f"INSERT INTO deliberations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_RETRYABLE = ", ".join(f"'{status.value}'" for status in RETRYABLE_STATUSES)
RELEASE_REQUEST = (
    "UPDATE deliberations SET request_key = NULL "
    f"WHERE request_key = ? AND fingerprint = ? AND status IN ({_RETRYABLE})"
)
# Only a queued or running record is written, and only by its owner: one already finished,
# marked interrupted (its replica's lease lapsed, and a retry may have taken its request_id
# over), or taken over by another worker (its queue delivered it again), keeps its state.
UPDATE_RECORD = (
    "UPDATE deliberations SET status = ?, updated_at = ?, finished_at = ?, error = ?, document = ? "
    "WHERE deliberation_id = ? AND status IN ('queued', 'running') AND owner = ?"
)
TAKE_RECORD = (
    "UPDATE deliberations SET status = 'running', owner = ?, updated_at = ? "
    f"WHERE deliberation_id = ? AND status IN ('queued', 'running') RETURNING {RECORD_COLUMNS}"
)
CANCEL_QUEUED = (
    "UPDATE deliberations SET status = 'cancelled', finished_at = ?, updated_at = ?, error = ? "
    f"WHERE deliberation_id = ? AND status = 'queued' RETURNING {RECORD_COLUMNS}"
)
CANCEL_RUNNING = (
    "UPDATE deliberations SET cancel_requested = 1 "
    f"WHERE deliberation_id = ? AND status = 'running' RETURNING {RECORD_COLUMNS}"
)
DELETE_BEFORE = "DELETE FROM deliberations WHERE created_at < ? AND status NOT IN ('queued', 'running')"


class SQLRecordStore(ABC):
    """The store methods that are one statement, the same on both databases. A subclass
    runs statements: :meth:`_fetch` returns the rows, :meth:`_execute` the rows changed."""

    @abstractmethod
    async def _fetch(self, statement: str, params: tuple[object, ...]) -> Sequence[tuple[Any, ...]]: ...

    @abstractmethod
    async def _execute(self, statement: str, params: tuple[object, ...]) -> int: ...

    async def update(self, record: DeliberationRecord) -> bool:
        return await self._execute(UPDATE_RECORD, update_params(record)) > 0

    async def take(self, deliberation_id: str, owner: str) -> DeliberationRecord | None:
        rows = await self._fetch(TAKE_RECORD, (owner, time.time(), deliberation_id))
        return decode_row(rows[0]) if rows else None

    async def request_cancel(self, deliberation_id: str) -> DeliberationRecord | None:
        now = time.time()
        rows = await self._fetch(CANCEL_QUEUED, (now, now, CANCELLED_ERROR, deliberation_id))
        if not rows:
            rows = await self._fetch(CANCEL_RUNNING, (deliberation_id,))
        return decode_row(rows[0]) if rows else await self.get(deliberation_id)

    async def get(self, deliberation_id: str) -> DeliberationRecord | None:
        return await self._one(f"{SELECT_RECORD} WHERE deliberation_id = ?", deliberation_id)

    async def get_by_request(self, request_id: str) -> DeliberationRecord | None:
        return await self._one(f"{SELECT_RECORD} WHERE request_key = ?", request_id)

    async def list(self, query: RecordQuery) -> RecordPage:
        statement, params, limit = list_sql(query)
        rows = await self._fetch(statement, tuple(params))
        return page_of([decode_row(row) for row in rows], limit)

    async def retire(self, owner: str) -> None:
        await self._execute("DELETE FROM replicas WHERE owner = ?", (owner,))

    async def delete_before(self, cutoff: float) -> int:
        return await self._execute(DELETE_BEFORE, (cutoff,))

    async def _one(self, statement: str, value: str) -> DeliberationRecord | None:
        rows = await self._fetch(statement, (value,))
        return decode_row(rows[0]) if rows else None


@dataclass(frozen=True)
class OrphanSweep:
    """The two statements of ``interrupt_orphans``, for one transaction: mark INTERRUPTED
    the orphaned running records (returning their ids), then forget the lapsed leases."""

    interrupt: str
    interrupt_params: tuple[object, ...]
    forget: str
    forget_params: tuple[object, ...]


def orphan_sweep(
    owner: str,
    lease_seconds: float | None,
    *,
    now: float,
    lease_cutoff: str,
    cutoff_value: float,
    queue_redelivers: bool = False,
) -> OrphanSweep:
    """The sweep for ``owner``: every other owner's running records when ``lease_seconds`` is
    None, else those of owners without a live lease. ``lease_cutoff`` is the SQL of the
    oldest heartbeat still live, one placeholder bound to ``cutoff_value``: the stores differ
    only in whose clock that reads.

    Records a work queue carries (the ``queued`` column) are the queue's when it delivers
    again (``queue_redelivers``: a durable queue, JetStream): they are left alone, queued or
    running, for the next worker to take over. Without it (the in-process queue died with
    its process) they are interrupted like the others, queued ones included: nothing would
    ever run them."""
    leased = lease_seconds is not None
    live = f" AND owner NOT IN (SELECT owner FROM replicas WHERE heartbeat_at >= {lease_cutoff})" if leased else ""
    cutoff: tuple[object, ...] = (cutoff_value,) if leased else ()
    which = "status = 'running' AND queued = 0" if queue_redelivers else "status IN ('queued', 'running')"
    return OrphanSweep(
        interrupt=(
            "UPDATE deliberations SET status = 'interrupted', finished_at = ?, updated_at = ?, error = ? "
            f"WHERE {which} AND owner <> ?{live} RETURNING deliberation_id"
        ),
        interrupt_params=(now, now, INTERRUPTED_ERROR, owner, *cutoff),
        forget="DELETE FROM replicas WHERE owner <> ?" + (f" AND heartbeat_at < {lease_cutoff}" if leased else ""),
        forget_params=(owner, *cutoff),
    )


def insert_params(record: DeliberationRecord) -> tuple[Any, ...]:
    return (
        record.deliberation_id,
        record.request_id or None,
        record.request_fingerprint,
        record.kind,
        record.role,
        record.status.value,
        record.owner,
        record.created_at,
        record.updated_at or record.created_at,
        record.finished_at,
        record.error,
        encode_record(record),
        int(record.queued),
        int(record.cancel_requested),
    )


def update_params(record: DeliberationRecord) -> tuple[Any, ...]:
    return (
        record.status.value,
        record.updated_at,
        record.finished_at,
        record.error,
        encode_record(record),
        record.deliberation_id,
        record.owner,
    )


def encode_record(record: DeliberationRecord) -> str:
    return RECORD_ADAPTER.dump_json(record).decode()


_COLUMN_KINDS = {RecordStatus.INTERRUPTED.value: INTERRUPTED_KIND, RecordStatus.CANCELLED.value: CANCELLED_KIND}
"""The error kind of a status only a column was set to (a sweep, a cancel while queued)."""


def decode_row(row: tuple[Any, ...]) -> DeliberationRecord:
    """A record from ``RECORD_COLUMNS``; the state columns win over the document."""
    status, finished_at, error, document, owner, cancel_requested = row
    record = RECORD_ADAPTER.validate_json(document)
    if owner != record.owner or bool(cancel_requested) != record.cancel_requested:
        record = replace(record, owner=owner, cancel_requested=bool(cancel_requested))
    if status == record.status.value:
        return record
    return replace(
        record,
        status=RecordStatus(status),
        finished_at=finished_at,
        error=error,
        error_kind=_COLUMN_KINDS.get(status, record.error_kind),
    )


def list_sql(query: RecordQuery) -> tuple[str, list[Any], int]:
    """The SELECT for one page (one row more than the page, to know if another follows)."""
    limit = page_size_of(query.page_size)
    where: list[str] = []
    params: list[Any] = []
    if query.role:
        where.append("role = ?")
        params.append(query.role)
    if query.status is not None:
        where.append("status = ?")
        params.append(query.status.value)
    if query.created_after is not None:
        where.append("created_at >= ?")
        params.append(query.created_after)
    if query.created_before is not None:
        where.append("created_at < ?")
        params.append(query.created_before)
    if query.page_token:
        created_at, deliberation_id = decode_page_token(query.page_token)
        where.append("(created_at < ? OR (created_at = ? AND deliberation_id > ?))")
        params += [created_at, created_at, deliberation_id]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    statement = f"{SELECT_RECORD}{clause} ORDER BY created_at DESC, deliberation_id LIMIT ?"
    return statement, [*params, limit + 1], limit
