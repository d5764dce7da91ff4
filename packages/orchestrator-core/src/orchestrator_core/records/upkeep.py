"""Keeping the records true over time: leases, interrupted records, retention.

Each process has an owner id, stored on the records it runs. With a shared database it
renews a lease in the ``replicas`` table every ``record_heartbeat_seconds`` and, on the same
beat, marks INTERRUPTED the running records of owners whose lease is older than
``record_lease_seconds``: those of dead replicas, never of live ones. A SQLite file has one
process, so at startup every record another process left running is interrupted. When
``record_retention_days`` is set, finished records older than that are deleted every
``record_retention_interval_seconds``.

Queued deliberations (a work queue carries them): with a durable queue (JetStream,
``queue_redelivers``) the records of a lost worker are the queue's, delivered again once its
ack wait lapses and taken over by the next worker, so the sweep leaves them alone; with the
in-process queue they died with their process and are interrupted like any other, the
QUEUED ones included.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import Settings
from orchestrator_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


class RecordUpkeep:
    def __init__(
        self, store: DeliberationStore, settings: Settings, owner: str, *, queue_redelivers: bool = False
    ) -> None:
        self.store = store
        self.settings = settings
        self.owner = owner
        self.queue_redelivers = queue_redelivers
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Take the lease, interrupt orphaned records, and start the periodic tasks."""
        await self.store.heartbeat(self.owner)
        lease = self.settings.record_lease_seconds if self.store.shared else None
        await self._interrupt(lease)
        loop = asyncio.get_running_loop()
        if self.store.shared:
            self._tasks.append(loop.create_task(self._every(self.settings.record_heartbeat_seconds, self.beat)))
        if self.settings.record_retention_days > 0:
            await self.prune()
            interval = self.settings.record_retention_interval_seconds
            self._tasks.append(loop.create_task(self._every(interval, self.prune)))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        try:
            await self.store.retire(self.owner)
        except Exception as exc:
            log.warning("could not drop this replica's lease: %s", exc)

    async def beat(self) -> None:
        await self.store.heartbeat(self.owner)
        await self._interrupt(self.settings.record_lease_seconds)

    async def prune(self) -> None:
        cutoff = time.time() - self.settings.record_retention_days * SECONDS_PER_DAY
        deleted = await self.store.delete_before(cutoff)
        if deleted:
            days = self.settings.record_retention_days
            log.info("deleted %d deliberation record(s) older than %g days", deleted, days)

    async def _interrupt(self, lease_seconds: float | None) -> None:
        interrupted = await self.store.interrupt_orphans(
            self.owner, lease_seconds, queue_redelivers=self.queue_redelivers
        )
        if interrupted:
            log.warning(
                "marked %d deliberation record(s) interrupted; the process running them stopped: %s",
                len(interrupted), ", ".join(interrupted),
            )

    @staticmethod
    async def _every(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception as exc:  # the database may come back; keep trying
                log.warning("record upkeep failed (will retry in %gs): %s", seconds, exc)
