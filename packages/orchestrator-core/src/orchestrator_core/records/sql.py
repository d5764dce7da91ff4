"""What the SQL record stores share: the table's statements, how a record becomes a row and
back, and the methods that differ between SQLite and PostgreSQL only in how a statement runs.

A record is one row: the columns that queries filter and update on, and the whole record
as a JSON document (pydantic serialises the domain dataclasses). ``status``,
``finished_at`` and ``error`` live in columns and win over the document, so a sweep can
mark a record interrupted with one UPDATE.

SQL here uses ``?`` placeholders; the PostgreSQL store turns them into ``%s``.
"""

from __future__ import annotations

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

COLUMNS = (
    "deliberation_id, request_key, fingerprint, kind, role, status, owner, "
    "created_at, updated_at, finished_at, error, document"
)
SELECT_RECORD = "SELECT status, finished_at, error, document FROM deliberations"
INSERT_RECORD = f"INSERT INTO deliberations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_RETRYABLE = ", ".join(f"'{status.value}'" for status in RETRYABLE_STATUSES)
RELEASE_REQUEST = (
    "UPDATE deliberations SET request_key = NULL "
    f"WHERE request_key = ? AND fingerprint = ? AND status IN ({_RETRYABLE})"
)
# Only a running record is written: one already finished, or marked interrupted (its
# replica's lease lapsed, and a retry may have taken its request_id over), keeps its state.
UPDATE_RECORD = (
    "UPDATE deliberations SET status = ?, updated_at = ?, finished_at = ?, error = ?, document = ? "
    "WHERE deliberation_id = ? AND status = 'running'"
)
DELETE_BEFORE = "DELETE FROM deliberations WHERE created_at < ? AND status <> 'running'"


class SQLRecordStore(ABC):
    """The store methods that are one statement, the same on both databases. A subclass
    runs statements: :meth:`_fetch` returns the rows, :meth:`_execute` the rows changed."""

    @abstractmethod
    async def _fetch(self, statement: str, params: tuple[object, ...]) -> Sequence[tuple[Any, ...]]: ...

    @abstractmethod
    async def _execute(self, statement: str, params: tuple[object, ...]) -> int: ...

    async def update(self, record: DeliberationRecord) -> None:
        await self._execute(UPDATE_RECORD, update_params(record))

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
    owner: str, lease_seconds: float | None, *, now: float, lease_cutoff: str, cutoff_value: float
) -> OrphanSweep:
    """The sweep for ``owner``: every other owner's running records when ``lease_seconds`` is
    None, else those of owners without a live lease. ``lease_cutoff`` is the SQL of the
    oldest heartbeat still live, one placeholder bound to ``cutoff_value``: the stores differ
    only in whose clock that reads."""
    leased = lease_seconds is not None
    live = f" AND owner NOT IN (SELECT owner FROM replicas WHERE heartbeat_at >= {lease_cutoff})" if leased else ""
    cutoff: tuple[object, ...] = (cutoff_value,) if leased else ()
    return OrphanSweep(
        interrupt=(
            "UPDATE deliberations SET status = 'interrupted', finished_at = ?, updated_at = ?, error = ? "
            f"WHERE status = 'running' AND owner <> ?{live} RETURNING deliberation_id"
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
    )


def update_params(record: DeliberationRecord) -> tuple[Any, ...]:
    return (
        record.status.value,
        record.updated_at,
        record.finished_at,
        record.error,
        encode_record(record),
        record.deliberation_id,
    )


def encode_record(record: DeliberationRecord) -> str:
    return RECORD_ADAPTER.dump_json(record).decode()


def decode_row(row: tuple[Any, ...]) -> DeliberationRecord:
    """A record from ``SELECT_RECORD``'s columns; the state columns win over the document."""
    status, finished_at, error, document = row
    record = RECORD_ADAPTER.validate_json(document)
    if status == record.status.value:
        return record
    kind = INTERRUPTED_KIND if status == RecordStatus.INTERRUPTED.value else record.error_kind
    return replace(
        record, status=RecordStatus(status), finished_at=finished_at, error=error, error_kind=kind
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
