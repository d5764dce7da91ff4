"""The interface every record store implements, and what the SQL stores share.

A record is one row: the columns that queries filter and update on, and the whole record
as a JSON document (pydantic serialises the domain dataclasses). ``status``,
``finished_at`` and ``error`` live in columns and win over the document, so a sweep can
mark a record interrupted with one UPDATE.

SQL here uses ``?`` placeholders; the PostgreSQL store turns them into ``%s``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import replace
from typing import Any, Protocol

from pydantic import TypeAdapter

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.records.model import (
    RETRYABLE_STATUSES,
    DeliberationRecord,
    RecordPage,
    RecordQuery,
    RecordStatus,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
INTERRUPTED_KIND = "Interrupted"


class DeliberationStore(Protocol):
    """Where records live. Every method is async and never blocks the event loop."""

    @property
    def shared(self) -> bool:
        """True when other processes may write the same records (replicas on one database)."""
        ...

    async def open(self) -> None:
        """Connect and bring the schema up to date."""
        ...

    async def close(self) -> None: ...

    async def create(self, record: DeliberationRecord) -> DeliberationRecord | None:
        """Insert a RUNNING record. When ``record.request_id`` is set and another record holds
        it, nothing is inserted and that record is returned; a failed, cancelled or
        interrupted holder with the same ``request_fingerprint`` gives the id up first."""
        ...

    async def update(self, record: DeliberationRecord, *, final: bool) -> None:
        """Write the record's progress (only while its row is still RUNNING) or, when
        ``final``, its finished state (always)."""
        ...

    async def get(self, deliberation_id: str) -> DeliberationRecord | None: ...

    async def get_by_request(self, request_id: str) -> DeliberationRecord | None:
        """The record currently holding ``request_id``."""
        ...

    async def list(self, query: RecordQuery) -> RecordPage: ...

    async def heartbeat(self, owner: str) -> None:
        """Renew ``owner``'s lease in the replicas table."""
        ...

    async def retire(self, owner: str) -> None:
        """Drop ``owner``'s lease (a clean shutdown)."""
        ...

    async def interrupt_orphans(self, owner: str, lease_seconds: float | None) -> tuple[str, ...]:
        """Mark INTERRUPTED the RUNNING records of owners other than ``owner`` whose lease is
        older than ``lease_seconds`` (every other owner when None); returns their ids."""
        ...

    async def delete_before(self, cutoff: float) -> int:
        """Delete finished records created before ``cutoff``; returns how many."""
        ...


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
_SET_STATE = "status = ?, updated_at = ?, finished_at = ?, error = ?, document = ?"
UPDATE_PROGRESS = f"UPDATE deliberations SET {_SET_STATE} WHERE deliberation_id = ? AND status = 'running'"
# Both updates apply only to a running record: one already marked interrupted (its replica's
# lease lapsed, and a retry may have taken its request_id over) keeps that status.
UPDATE_FINAL = f"UPDATE deliberations SET {_SET_STATE} WHERE deliberation_id = ? AND status = 'running'"
DELETE_BEFORE = "DELETE FROM deliberations WHERE created_at < ? AND status <> 'running'"
INTERRUPTED_ERROR = "interrupted: the server process running it stopped before it finished"


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
    sql = f"{SELECT_RECORD}{clause} ORDER BY created_at DESC, deliberation_id LIMIT ?"
    return sql, [*params, limit + 1], limit


def page_of(records: list[DeliberationRecord], limit: int) -> RecordPage:
    page = tuple(records[:limit])
    token = encode_page_token(page[-1]) if len(records) > limit else ""
    return RecordPage(records=page, next_page_token=token)


def encode_page_token(last: DeliberationRecord) -> str:
    """A keyset token: the sort key of the page's last record, so records written while a
    client pages through neither repeat nor go missing."""
    key = json.dumps({"c": last.created_at, "i": last.deliberation_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(key.encode()).decode()


MAX_PAGE_TOKEN_CHARS = 512


def decode_page_token(token: str) -> tuple[float, str]:
    if len(token) > MAX_PAGE_TOKEN_CHARS:
        raise InvalidRequest("page_token is not one this server issued")
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        created_at, deliberation_id = key["c"], key["i"]
        finite = isinstance(created_at, int | float) and math.isfinite(created_at)
    except (ValueError, UnicodeError, binascii.Error, TypeError, KeyError, OverflowError, RecursionError):
        raise InvalidRequest("page_token is not one this server issued") from None
    if (
        not finite
        or isinstance(created_at, bool)
        or not isinstance(deliberation_id, str)
        or not deliberation_id.isprintable()
    ):
        raise InvalidRequest("page_token is not one this server issued")
    return float(created_at), deliberation_id


def page_size_of(requested: int) -> int:
    if requested < 0:
        raise InvalidRequest(f"page_size must not be negative (got {requested})")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
