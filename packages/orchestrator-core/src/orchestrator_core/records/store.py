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
        """Insert a QUEUED or RUNNING record. When ``record.request_id`` is set and another record holds
        it, nothing is inserted and that record is returned; a failed, cancelled or
        interrupted holder with the same ``request_fingerprint`` gives the id up first."""
        ...

    async def update(self, record: DeliberationRecord) -> bool:
        """Write the record, its progress or its finished state, while its row is still
        QUEUED or RUNNING and owned by ``record.owner``; a row that is not keeps what it
        holds, and this returns False. So late progress never overwrites a finished record,
        a record marked INTERRUPTED (its replica's lease lapsed, and a retry may have taken
        its request_id over) stays so even when its own process finishes it after all, and a
        worker whose record another worker took over (:meth:`take`) writes nothing more. The
        write is durable when this returns True. ``cancel_requested`` is never written here
        (see :meth:`request_cancel`)."""
        ...

    async def take(self, deliberation_id: str, owner: str) -> DeliberationRecord | None:
        """Make ``owner`` the runner of a QUEUED or RUNNING record (compare-and-set: status
        RUNNING, owner ``owner``) and return it as it now is; None when the record is
        finished or missing. The previous owner's writes are refused from then on."""
        ...

    async def request_cancel(self, deliberation_id: str) -> DeliberationRecord | None:
        """Cancel a QUEUED record at once (CANCELLED, finished now), or mark a RUNNING one
        ``cancel_requested`` for the process running it; a finished one is left as it is.
        Returns the record as it now is, None when missing."""
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

    async def interrupt_orphans(
        self, owner: str, lease_seconds: float | None, *, queue_redelivers: bool = False
    ) -> tuple[str, ...]:
        """Mark INTERRUPTED the QUEUED and RUNNING records of owners other than ``owner``
        whose lease is older than ``lease_seconds`` (every other owner when None); returns
        their ids. With ``queue_redelivers`` (a durable work queue) the records a queue
        carries are left out, QUEUED or RUNNING: the queue delivers them again and the next
        worker takes them over (see :func:`orchestrator_core.records.sql.orphan_sweep`)."""
        ...

    async def delete_before(self, cutoff: float) -> int:
        """Delete finished records created before ``cutoff``; returns how many."""
        ...
