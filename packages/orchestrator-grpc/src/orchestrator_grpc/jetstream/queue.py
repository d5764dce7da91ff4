"""The work queue on NATS JetStream: any number of workers, on any machine, sharing the records.

A submitted deliberation is one message on the work-queue stream ``ORCHESTRATOR_WORK``
(subject ``orchestrator.work``, file storage, work-queue retention: an acked message is
gone), its body the deliberation id and its ``Nats-Msg-Id`` the same id, so a publish
retried after a lost answer queues it once. Workers pull from the durable consumer
``orchestrator-workers`` (explicit ack): a message not acked within ``ack_wait`` (the worker
died, or lost its connection for that long) is delivered again, to any worker, up to
``max_deliver + 1`` times — the last delivery is the one on which the record fails with the
reason (``run_queued`` sees its attempt past ``max_deliver``). Stream and consumer are
created when the queue starts, or updated to these settings if they exist.

Change notices go on core NATS subjects ``orchestrator.changes.<deliberation id>``: not
stored, lost if no one listens, which is fine — a watcher reads the record, the truth,
after each notice and on its own every so often.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from orchestrator_core.settings import Settings
from orchestrator_core.work_queue import Handler, QueueDepth
from orchestrator_grpc.jetstream.connection import connect, scrubbed, shown_servers
from orchestrator_grpc.jetstream.errors import NATS_URL_ENV, QueueUnavailable

log = logging.getLogger(__name__)

STREAM = "ORCHESTRATOR_WORK"
WORK_SUBJECT = "orchestrator.work"
CONSUMER = "orchestrator-workers"
CHANGES_PREFIX = "orchestrator.changes."
PUBLISH_SECONDS = 10.0
"""How long a publish keeps trying (the connection may be coming back) before it fails."""
REQUEST_SECONDS = 2.0
"""One request to JetStream (a publish's acknowledgement, the consumer's info)."""
FETCH_SECONDS = 1.0
"""One pull: how long a worker with a free slot waits for a message before pulling again.
Short, so that a worker told to stop stops pulling within it."""
SETTLE_SECONDS = 5.0
"""How long an ack or a nak waits for the server to have it."""


class JetStreamDelivery:
    """One delivery of a message: its deliberation id, its attempt, and its acknowledgements."""

    def __init__(self, msg: Msg, queue: JetStreamQueue) -> None:
        self._msg = msg
        self._queue = queue
        self.deliberation_id = msg.data.decode()
        self.attempt = msg.metadata.num_delivered or 1
        self.settled = False
        """Acked or handed back: nothing more to say about it."""

    async def in_progress(self) -> None:
        """Reset the ack wait; a lost one (the connection is down) only costs a little of it."""
        try:
            await self._msg.in_progress()
        except Exception as exc:
            log.warning("no in-progress ack for %s: %s", self.deliberation_id, self._queue.scrub(exc))

    async def ack(self) -> None:
        await self._settle(self._msg.ack, "ack")

    async def nak(self) -> None:
        await self._settle(self._msg.nak, "hand back")

    async def _settle(self, send: object, what: str) -> None:
        """Send the ack or nak and wait until the server has it. If it cannot (the connection
        is down longer), the message is delivered again once its ack wait lapses: the next
        worker finds the record final and acks it, or resumes it."""
        if self.settled:
            return
        self.settled = True
        try:
            await send()  # type: ignore[operator]
            await self._queue.flush()
        except Exception as exc:
            log.warning("could not %s %s: %s", what, self.deliberation_id, self._queue.scrub(exc))


class JetStreamQueue:
    """:class:`orchestrator_core.work_queue.WorkQueue` on NATS JetStream (see the module)."""

    def __init__(self, settings: Settings, name: str = "orchestrator") -> None:
        if settings.nats_url is None:
            raise ValueError(f"{NATS_URL_ENV} is not set")
        self._url = settings.nats_url.get_secret_value()
        self._name = name
        self.max_deliver = settings.queue_max_deliver
        self.ack_wait_seconds = settings.queue_ack_wait_seconds
        self.servers = shown_servers(self._url)
        """The servers, without credentials: for messages and logs."""
        self.last_depth = QueueDepth()
        """The depth as last read by :meth:`depth` (for readers that must not wait on NATS)."""
        self._redelivered = 0
        self._handlers: set[asyncio.Task[None]] = set()
        """Deliveries being handled, by every consumer of this queue."""
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Connect and make sure the stream and the consumer exist as the settings say."""
        self._nc = await connect(self._url, self._name)
        self._js = self._nc.jetstream(timeout=REQUEST_SECONDS)
        try:
            await self._declare()
        except BaseException:
            await self.close()
            raise
        log.info(
            "work queue: NATS JetStream at %s (stream %s, consumer %s, ack wait %gs, max deliver %d)",
            self.servers, STREAM, CONSUMER, self.ack_wait_seconds, self.max_deliver,
        )

    async def close(self) -> None:
        """Let the handlers still running settle their deliveries for a moment, hand back what
        they hold after it, and close the connection."""
        if self._handlers:
            _, left = await asyncio.wait(self._handlers, timeout=SETTLE_SECONDS)
            for task in left:
                task.cancel()
            if left:
                await asyncio.wait(left, timeout=SETTLE_SECONDS)
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _declare(self) -> None:
        js = self._jetstream()
        stream = StreamConfig(
            name=STREAM, subjects=[WORK_SUBJECT], retention=RetentionPolicy.WORK_QUEUE, storage=StorageType.FILE
        )
        try:
            await js.add_stream(stream)
        except nats.js.errors.BadRequestError:
            await js.update_stream(stream)  # it exists with other settings (subjects, limits)
        consumer = ConsumerConfig(
            durable_name=CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            # One delivery more than max_deliver: on it the record fails, naming the setting.
            max_deliver=self.max_deliver + 1,
            filter_subject=WORK_SUBJECT,
        )
        try:
            await js.add_consumer(STREAM, consumer)
        except nats.js.errors.BadRequestError as exc:
            # It exists with settings this version of the server cannot change in place.
            log.warning(
                "the consumer %s exists with other settings and is used as it is: %s", CONSUMER, exc.description
            )

    # -- the queue ------------------------------------------------------------

    async def publish(self, deliberation_id: str) -> None:
        """Queue the id; stored by JetStream when this returns. Sent only over a live
        connection, tried again for up to ``PUBLISH_SECONDS`` while it comes back (the message
        id makes the retries one message), then :class:`QueueUnavailable`."""
        js = self._jetstream()
        nc = self._connection()
        deadline = time.monotonic() + PUBLISH_SECONDS
        while True:
            if not nc.is_connected:
                # Not into the client's reconnect buffer: sent later, it would queue a
                # deliberation whose submitter was told it failed.
                if nc.is_closed:
                    raise QueueUnavailable(self._unavailable(deliberation_id, "the connection is closed"))
                if time.monotonic() >= deadline:
                    raise QueueUnavailable(self._unavailable(deliberation_id, "not connected"))
                await asyncio.sleep(0.05)
                continue
            try:
                await js.publish(
                    WORK_SUBJECT, deliberation_id.encode(), timeout=REQUEST_SECONDS,
                    headers={"Nats-Msg-Id": deliberation_id},
                )
                return
            except nats.errors.ConnectionClosedError:
                raise QueueUnavailable(self._unavailable(deliberation_id, "the connection is closed")) from None
            except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                if time.monotonic() >= deadline:
                    raise QueueUnavailable(self._unavailable(deliberation_id, self.scrub(exc))) from None
                if isinstance(exc, (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError)):
                    # No stream to store it: the server lost its store. Declare it again.
                    with contextlib.suppress(Exception):
                        await self._declare()
                await asyncio.sleep(0.2)

    def _unavailable(self, deliberation_id: str, reason: str) -> str:
        return (
            f"the work queue (NATS at {self.servers}, {NATS_URL_ENV}) did not take deliberation "
            f"{deliberation_id} within {PUBLISH_SECONDS:g}s: {reason}"
        )

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Pull messages and hand each to ``handler`` in its own task, at most ``concurrency``
        at once, until cancelled.

        Cancelled, it stops pulling (what the pull under way brings is handed back); the
        handlers running go on, each to ack or hand back its delivery (:meth:`close` hands
        back what they still hold). A handler that ends by an exception (cancellation
        included) without having acked or handed back its delivery has it handed back here;
        one that returns without either leaves the message to be delivered again once its
        ack wait lapses (it lost the record to another worker).
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1; got {concurrency}")
        subscription = await self._subscribe()
        mine: set[asyncio.Task[None]] = set()
        try:
            while True:
                while len(mine) >= concurrency:
                    await asyncio.wait(mine, return_when=asyncio.FIRST_COMPLETED)
                for msg in await self._pull(subscription, concurrency - len(mine)):
                    task = asyncio.create_task(self._handle(handler, msg), name=f"queued {msg.data.decode()}")
                    for tasks in (mine, self._handlers):
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        return await self._jetstream().pull_subscribe_bind(durable=CONSUMER, stream=STREAM)

    async def _pull(self, subscription: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
        """Up to ``batch`` messages; none when none came within ``FETCH_SECONDS`` or the
        connection is down. Cancelled, it lets the pull finish and hands back what it brought
        (a message dropped here would wait out its ack wait)."""
        pull = asyncio.ensure_future(subscription.fetch(batch, timeout=FETCH_SECONDS))
        try:
            return await asyncio.shield(pull)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                for msg in await pull:
                    await msg.nak()
            raise
        except TimeoutError:  # the client's own, and asyncio's plain one from deep inside a fetch
            return []
        except nats.errors.ConnectionClosedError:
            raise QueueUnavailable(f"the work queue's NATS connection ({self.servers}) is closed") from None
        except Exception as exc:
            # E.g. the consumer is gone (the server lost its store): declare it again. Nothing
            # a pull raises may end the worker: the connection comes back on its own.
            log.warning("pulling from the work queue failed: %s; trying again", self.scrub(exc) or type(exc).__name__)
            await asyncio.sleep(FETCH_SECONDS)
            with contextlib.suppress(Exception):
                await self._declare()
            return []

    async def _handle(self, handler: Handler, msg: Msg) -> None:
        delivery = JetStreamDelivery(msg, self)
        if delivery.attempt > 1:
            self._redelivered += 1
        try:
            await handler(delivery)
        except BaseException as exc:
            if not delivery.settled:
                await delivery.nak()
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.error("running queued deliberation %s failed; handed back", delivery.deliberation_id, exc_info=exc)

    async def changed(self, deliberation_id: str, sequence: int) -> None:
        """Tell watchers anywhere; best effort (a lost notice only delays a watcher's poll)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        try:
            await nc.publish(CHANGES_PREFIX + deliberation_id, str(sequence).encode())
        except Exception as exc:
            log.debug("no change notice for %s: %s", deliberation_id, self.scrub(exc))

    async def changes(self, deliberation_id: str) -> AsyncIterator[int]:
        subscription = await self._connection().subscribe(CHANGES_PREFIX + deliberation_id)
        try:
            async for msg in subscription.messages:
                with contextlib.suppress(ValueError):
                    yield int(msg.data)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def depth(self) -> QueueDepth:
        """From the consumer's info, for every worker: messages not yet delivered (a handed-back
        one waiting to go again counts as delivered), delivered and not acked; and the
        deliveries beyond the first this process's consumers took. Also kept in
        :attr:`last_depth`."""
        try:
            info = await self._jetstream().consumer_info(STREAM, CONSUMER, timeout=REQUEST_SECONDS)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise QueueUnavailable(
                f"the work queue (NATS at {self.servers}, {NATS_URL_ENV}) did not answer: {self.scrub(exc)}"
            ) from None
        self.last_depth = QueueDepth(
            pending=info.num_pending or 0, in_flight=info.num_ack_pending or 0, redelivered=self._redelivered
        )
        return self.last_depth

    # -- helpers --------------------------------------------------------------

    async def flush(self) -> None:
        await self._connection().flush(timeout=int(SETTLE_SECONDS))

    def scrub(self, error: BaseException) -> str:
        """An error of the client, as a message may show it (no credentials)."""
        return scrubbed(str(error) or type(error).__name__, self._url)

    def _connection(self) -> Client:
        if self._nc is None:
            raise QueueUnavailable("the work queue is not started")
        return self._nc

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise QueueUnavailable("the work queue is not started")
        return self._js
