"""The queue that carries submitted deliberations to the processes that run them.

A submitted deliberation is a QUEUED record (the record holds everything a run needs) and a
message on the queue naming its id. A worker takes a message as a :class:`Delivery`, runs
the record, keeps the delivery alive while it works (:meth:`Delivery.in_progress`) and acks
it once the record is final; a worker that stops before that hands it back
(:meth:`Delivery.nak`), and one that dies leaves it to be delivered again once its ack
wait lapses, up to ``max_deliver`` times.

Two implementations: in-process (:mod:`orchestrator_core.local_queue`, the default: one
process does everything) and NATS JetStream (``ORCH_NATS_URL``; any number of workers on
any machine sharing the record store). Watchers learn that a record changed through
:meth:`WorkQueue.changes`, and read what changed from the record itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class QueueDepth:
    """What waits: messages not yet delivered, and delivered but not yet acked."""

    pending: int = 0
    in_flight: int = 0
    redelivered: int = 0
    """Deliveries beyond the first since the process started (workers lost, hand-backs)."""


class Delivery(Protocol):
    """One delivery of a queued deliberation to a worker."""

    @property
    def deliberation_id(self) -> str: ...

    @property
    def attempt(self) -> int:
        """1 for the first delivery, 2 for the first redelivery, ..."""
        ...

    async def in_progress(self) -> None:
        """Tell the queue the work goes on (resets its ack wait)."""
        ...

    async def ack(self) -> None:
        """The record is final: the message is done."""
        ...

    async def nak(self) -> None:
        """Hand the message back, to be delivered again (to any worker)."""
        ...


Handler = Callable[[Delivery], Awaitable[None]]


class WorkQueue(Protocol):
    max_deliver: int
    """Deliveries of one message at most; after the last one the record fails with the reason."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, deliberation_id: str) -> None:
        """Queue a QUEUED record's id; durable when this returns."""
        ...

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Deliver messages to ``handler``, at most ``concurrency`` at once, until cancelled;
        on cancellation stop taking messages (those being handled are the handler's to ack
        or nak)."""
        ...

    async def changed(self, deliberation_id: str, sequence: int) -> None:
        """Tell watchers, anywhere, that the record now holds ``sequence`` events."""
        ...

    def changes(self, deliberation_id: str) -> AsyncIterator[int]:
        """The sequence numbers :meth:`changed` announces for one record, from now on, until
        the iterator is closed. A watcher reads the record after each, and also on its own
        every so often: a notice may be lost, the record is the truth."""
        ...

    async def depth(self) -> QueueDepth: ...
