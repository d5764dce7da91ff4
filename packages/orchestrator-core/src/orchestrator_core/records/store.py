"""The interface every record store implements (the SQL both stores share is in
:mod:`orchestrator_core.records.sql`)."""

from __future__ import annotations

from typing import Protocol

from orchestrator_core.records.model import DeliberationRecord, RecordPage, RecordQuery


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

    async def update(self, record: DeliberationRecord) -> None:
        """Write the record, its progress or its finished state, while its row is still
        RUNNING; a row that is not keeps what it holds. So late progress never overwrites a
        finished record, and a record marked INTERRUPTED (its replica's lease lapsed, and a
        retry may have taken its request_id over) stays so even when its own process
        finishes it after all. The write is durable when this returns."""
        ...

    async def get(self, deliberation_id: str) -> DeliberationRecord | None: ...

    async def get_by_request(self, request_id: str) -> DeliberationRecord | None:
        """The record currently holding ``request_id``."""
        ...

    async def list(self, query: RecordQuery) -> RecordPage:
        """One page of the records ``query`` selects, newest first (see
        :mod:`orchestrator_core.records.paging`)."""
        ...

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
