"""The in-process work queue: delivery within a concurrency bound, hand-backs delivered again
up to an attempt beyond max_deliver, change notices to the watchers of one deliberation."""

from __future__ import annotations

import asyncio

import pytest
from core_support import HANG_GUARD, until

from orchestrator_core.local_queue import LocalQueue
from orchestrator_core.work_queue import Delivery, QueueDepth


async def test_messages_are_delivered_within_the_concurrency_bound() -> None:
    queue = LocalQueue()
    release = asyncio.Event()
    held: list[str] = []

    async def handler(delivery: Delivery) -> None:
        held.append(delivery.deliberation_id)
        await release.wait()
        await delivery.ack()

    for name in ("a", "b", "c"):
        await queue.publish(name)
    consumer = asyncio.get_running_loop().create_task(queue.consume(handler, 2))
    await until(lambda: len(held) == 2, "two deliveries")
    assert await queue.depth() == QueueDepth(pending=1, in_flight=2)
    release.set()
    await until(lambda: len(held) == 3, "the third delivery")
    await until(lambda: queue._in_flight == 0, "all handled")
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    assert held == ["a", "b", "c"]
    assert await queue.depth() == QueueDepth()


async def test_a_handed_back_message_comes_again_up_to_one_attempt_beyond_max_deliver() -> None:
    queue = LocalQueue(max_deliver=2)
    attempts: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        await delivery.nak()

    await queue.publish("a")
    consumer = asyncio.get_running_loop().create_task(queue.consume(handler, 1))
    await until(lambda: len(attempts) == 3, "three deliveries")
    await until(lambda: queue._in_flight == 0, "all handled")
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    assert attempts == [1, 2, 3]
    assert (await queue.depth()).redelivered == 2


async def test_change_notices_reach_the_watchers_of_that_deliberation_only() -> None:
    queue = LocalQueue()
    first, other = queue.changes("a"), queue.changes("b")
    nexts = [asyncio.ensure_future(anext(first)), asyncio.ensure_future(anext(other))]
    await asyncio.sleep(0)  # both watching
    await queue.changed("a", 4)
    assert await asyncio.wait_for(nexts[0], HANG_GUARD) == 4
    assert not nexts[1].done()
    await queue.close()  # ends every watch
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(nexts[1], HANG_GUARD)
