"""The in-process work queue: the default when no NATS server is configured.

One process does everything: what it publishes, its own consumers run, and its own watchers
hear of the changes. Nothing survives the process (a QUEUED record it leaves behind is
interrupted by the next one's upkeep; see :mod:`orchestrator_core.records.upkeep`). A
worker cannot be lost without losing the process, so there is no ack wait: a nakked
delivery is delivered again at once, with the next attempt number, and one its handler
neither acked nor nakked is dropped (its run was taken over elsewhere). Deliveries go on
to attempt ``max_deliver + 1``, so the handler sees an attempt beyond the bound and fails
the record with the reason rather than leave it queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from orchestrator_core.work_queue import Handler, QueueDepth

log = logging.getLogger(__name__)


@dataclass
class LocalDelivery:
    """One delivery of a message of the in-process queue."""

    deliberation_id: str
    attempt: int
    _settled: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    async def in_progress(self) -> None:
        """Nothing to reset: an in-process delivery has no ack wait."""

    async def ack(self) -> None:
        if not self._settled.done():
            self._settled.set_result(True)

    async def nak(self) -> None:
        if not self._settled.done():
            self._settled.set_result(False)

    @property
    def nakked(self) -> bool:
        return self._settled.done() and not self._settled.result()


class LocalQueue:
    """A :class:`~orchestrator_core.work_queue.WorkQueue` within one process (asyncio)."""

    def __init__(self, max_deliver: int = 5) -> None:
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self.max_deliver = max_deliver
        self._pending: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._in_flight = 0
        self._redelivered = 0
        self._watchers: dict[str, set[asyncio.Queue[int]]] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        """Deliveries being handled (held here: the loop keeps only weak references)."""

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.put_nowait(-1)

    async def publish(self, deliberation_id: str) -> None:
        self._pending.put_nowait((deliberation_id, 1))

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Hand messages to ``handler``, ``concurrency`` at most at once, until cancelled. On
        cancellation the handlers running go on (each acks or nakks its delivery)."""
        slots = asyncio.Semaphore(max(1, concurrency))
        while True:
            await slots.acquire()
            try:
                deliberation_id, attempt = await self._pending.get()
            except BaseException:
                slots.release()
                raise
            task = asyncio.get_running_loop().create_task(self._deliver(handler, deliberation_id, attempt))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _deliver(self, handler: Handler, deliberation_id: str, attempt: int) -> None:
        delivery = LocalDelivery(deliberation_id, attempt)
        self._in_flight += 1
        try:
            await handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the handler of queued deliberation %s failed", deliberation_id)
        finally:
            self._in_flight -= 1
            if delivery.nakked and attempt <= self.max_deliver:
                self._redelivered += 1
                self._pending.put_nowait((deliberation_id, attempt + 1))

    async def changed(self, deliberation_id: str, sequence: int) -> None:
        for watcher in self._watchers.get(deliberation_id, ()):
            watcher.put_nowait(sequence)

    async def changes(self, deliberation_id: str) -> AsyncIterator[int]:
        notices: asyncio.Queue[int] = asyncio.Queue()
        watchers = self._watchers.setdefault(deliberation_id, set())
        watchers.add(notices)
        try:
            while (sequence := await notices.get()) >= 0:
                yield sequence
        finally:
            watchers.discard(notices)
            if not watchers:
                self._watchers.pop(deliberation_id, None)

    async def depth(self) -> QueueDepth:
        return QueueDepth(pending=self._pending.qsize(), in_flight=self._in_flight, redelivered=self._redelivered)

