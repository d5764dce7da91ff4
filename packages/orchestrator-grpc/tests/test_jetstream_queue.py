"""The JetStream work queue against a real nats-server of the test's own: what is published is
delivered, acked once and gone; a delivery not acked comes back after the ack wait, a
handed-back one at once, each with its attempt, and no more than max_deliver + 1 times;
in-progress acks keep a delivery; a stopped consumer lets its handlers finish, or hands
their messages back; the stream survives the server's restart; and an unreachable server
is an error that names ORCH_NATS_URL without its password."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD
from nats.js.api import AckPolicy, RetentionPolicy, StorageType
from nats_support import NatsServer, free_port, nats_server

from orchestrator_core.settings import Settings
from orchestrator_core.work_queue import Delivery
from orchestrator_grpc.jetstream import QueueUnavailable, connection, queue, queue_from_settings
from orchestrator_grpc.jetstream.queue import CONSUMER, STREAM, JetStreamQueue


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as started:
        yield started


def settings_for(url: str, tmp_path: Path, **values: object) -> Settings:
    return Settings(nats_url=url, database_path=tmp_path / "records.sqlite3", **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[JetStreamQueue]:
    work = JetStreamQueue(settings)
    await work.start()
    try:
        yield work
    finally:
        await work.close()


@contextlib.asynccontextmanager
async def consuming(work: JetStreamQueue, handler: Callable[[Delivery], object], concurrency: int = 4) -> AsyncIterator[
    asyncio.Task[None]
]:
    task = asyncio.create_task(work.consume(handler, concurrency))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(HANG_GUARD):
        while not condition():
            await asyncio.sleep(0.01)


def test_without_a_nats_url_there_is_no_jetstream_queue(tmp_path: Path) -> None:
    assert queue_from_settings(Settings(database_path=tmp_path / "r.sqlite3")) is None
    assert isinstance(queue_from_settings(settings_for("nats://127.0.0.1:1", tmp_path)), JetStreamQueue)


async def test_the_stream_and_the_consumer_are_declared_as_the_settings_say(server: NatsServer, tmp_path: Path) -> None:
    settings = settings_for(server.url, tmp_path, queue_ack_wait_seconds=7, queue_max_deliver=3)
    async with started(settings) as work, started(settings) as again:  # a second start changes nothing
        assert work._js is not None
        stream = await work._js.stream_info(STREAM)
        assert stream.config.subjects == ["orchestrator.work"]
        assert stream.config.retention == RetentionPolicy.WORK_QUEUE
        assert stream.config.storage == StorageType.FILE
        consumer = await work._js.consumer_info(STREAM, CONSUMER)
        assert consumer.config.ack_policy == AckPolicy.EXPLICIT
        assert consumer.config.ack_wait == 7
        assert consumer.config.max_deliver == 4  # one more: on it the record fails with the reason
        assert (await again.depth()).pending == 0


async def test_each_message_is_delivered_acked_and_gone(server: NatsServer, tmp_path: Path) -> None:
    received: list[tuple[str, int]] = []

    async def handler(delivery: Delivery) -> None:
        received.append((delivery.deliberation_id, delivery.attempt))
        await delivery.ack()

    async with started(settings_for(server.url, tmp_path)) as work:
        ids = [f"d{n}" for n in range(5)]
        for deliberation_id in ids:
            await work.publish(deliberation_id)
        await work.publish("d0")  # a retried publish of the same id is one message
        assert (await work.depth()).pending == 5
        async with consuming(work, handler):
            await until(lambda: len(received) == 5)
            await until_depth(work, pending=0, in_flight=0)
        assert sorted(received) == [(i, 1) for i in ids]
        assert work._js is not None
        assert (await work._js.stream_info(STREAM)).state.messages == 0  # work-queue retention


async def until_depth(work: JetStreamQueue, pending: int, in_flight: int) -> None:
    async with asyncio.timeout(HANG_GUARD):
        while True:
            depth = await work.depth()
            if (depth.pending, depth.in_flight) == (pending, in_flight):
                return
            await asyncio.sleep(0.05)


async def test_a_delivery_left_unacked_comes_back_after_the_ack_wait(server: NatsServer, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt > 1:
            await delivery.ack()
        # the first returns without a word: as if its worker had lost the record

    async with started(settings_for(server.url, tmp_path, queue_ack_wait_seconds=1)) as work:
        await work.publish("lapsed")
        async with consuming(work, handler):
            await until(lambda: bool(attempts) and attempts[-1] > 1)
            await until_depth(work, pending=0, in_flight=0)
        # Delivered, left unacked, delivered again after the ack wait and acked there. (On a
        # busy machine NATS may hand a pull the first delivery twice, both numbered 1: the
        # second, also unacked, comes back in turn.)
        assert attempts[0] == 1
        assert attempts[-1] > 1
        assert attempts == sorted(attempts)
        assert (await work.depth()).redelivered == sum(1 for attempt in attempts if attempt > 1)


async def test_in_progress_acks_keep_a_delivery_past_its_ack_wait(server: NatsServer, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        for _ in range(12):  # 3 ack waits
            await asyncio.sleep(0.25)
            await delivery.in_progress()
        await delivery.ack()

    async with started(settings_for(server.url, tmp_path, queue_ack_wait_seconds=1)) as work:
        await work.publish("held")
        async with consuming(work, handler):
            await until(lambda: len(attempts) == 1)
            await until_depth(work, pending=0, in_flight=0)
        assert attempts == [1]


async def test_a_handler_that_raises_hands_its_delivery_back_at_once(server: NatsServer, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            raise RuntimeError("a bug in the handler")
        await delivery.ack()

    # An ack wait far longer than the test: the second delivery can only come from the nak.
    async with started(settings_for(server.url, tmp_path, queue_ack_wait_seconds=600)) as work:
        await work.publish("raises")
        async with consuming(work, handler):
            await until(lambda: attempts == [1, 2])
            await until_depth(work, pending=0, in_flight=0)


async def test_a_message_is_delivered_max_deliver_plus_one_times_at_most(server: NatsServer, tmp_path: Path) -> None:
    attempts: list[int] = []

    async def handler(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        await delivery.nak()

    async with started(settings_for(server.url, tmp_path, queue_max_deliver=2)) as work:
        await work.publish("doomed")
        async with consuming(work, handler):
            await until(lambda: len(attempts) == 3)
            await until_depth(work, pending=0, in_flight=0)
            assert work._js is not None
            info = await work._js.consumer_info(STREAM, CONSUMER)
            assert info.num_ack_pending == 0
            assert info.num_pending == 0
        assert attempts == [1, 2, 3]


async def test_a_stopped_consumer_takes_no_more_and_its_handlers_go_on(server: NatsServer, tmp_path: Path) -> None:
    started_runs: list[str] = []
    release = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        started_runs.append(delivery.deliberation_id)
        await release.wait()
        await delivery.ack()

    async with started(settings_for(server.url, tmp_path)) as work:
        await work.publish("finishing")
        consumer = asyncio.create_task(work.consume(handler, 2))
        await until(lambda: started_runs == ["finishing"])
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await work.publish("not taken")  # published after the stop: no one pulls it
        release.set()
        await until_depth(work, pending=1, in_flight=0)  # "finishing" acked by its handler
        assert started_runs == ["finishing"]


async def test_closing_the_queue_hands_back_what_its_handlers_still_hold(
    server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue, "SETTLE_SECONDS", 0.5)
    attempts: list[tuple[str, int]] = []
    cancelled = asyncio.Event()

    async def holding(delivery: Delivery) -> None:
        attempts.append((delivery.deliberation_id, delivery.attempt))
        try:
            await asyncio.Event().wait()  # never done
        finally:
            cancelled.set()

    async def acking(delivery: Delivery) -> None:
        attempts.append((delivery.deliberation_id, delivery.attempt))
        await delivery.ack()

    settings = settings_for(server.url, tmp_path, queue_ack_wait_seconds=600)
    async with started(settings) as work:
        await work.publish("held")
        consumer = asyncio.create_task(work.consume(holding, 1))
        await until(lambda: len(attempts) == 1)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    assert cancelled.is_set()
    async with started(settings) as work, consuming(work, acking):  # handed back: delivered again at once
        await until(lambda: len(attempts) == 2)
    assert attempts == [("held", 1), ("held", 2)]


async def test_change_notices_reach_a_watcher_of_that_deliberation(server: NatsServer, tmp_path: Path) -> None:
    settings = settings_for(server.url, tmp_path)
    async with started(settings) as front, started(settings) as worker:
        notices = front.changes("watched")
        first = asyncio.ensure_future(anext(notices))
        await asyncio.sleep(0.2)  # the subscription is made on the first read
        await worker.changed("other", 1)
        await worker.changed("watched", 3)
        async with asyncio.timeout(HANG_GUARD):
            assert await first == 3
        await notices.aclose()  # type: ignore[attr-defined]


async def test_queued_work_survives_a_restart_of_the_server(server: NatsServer, tmp_path: Path) -> None:
    received: set[str] = set()

    async def handler(delivery: Delivery) -> None:
        received.add(delivery.deliberation_id)
        await delivery.ack()

    async with started(settings_for(server.url, tmp_path)) as work:
        for n in range(5):
            await work.publish(f"before{n}")
        await asyncio.to_thread(server.kill)
        # Published while the server is down: the publish waits for it to come back.
        back = threading.Timer(1.0, server.start)
        back.start()
        try:
            await work.publish("during")
        finally:
            back.join()
        for n in range(5):
            await work.publish(f"after{n}")
        async with consuming(work, handler):
            await until(lambda: len(received) == 11)
            await until_depth(work, pending=0, in_flight=0)
        assert received == {"during", *(f"before{n}" for n in range(5)), *(f"after{n}" for n in range(5))}


async def test_an_unreachable_queue_is_an_error_naming_the_setting_not_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "START_SECONDS", 0.5)
    monkeypatch.setattr(queue, "PUBLISH_SECONDS", 1.0)
    port = free_port()
    url = f"nats://orchestrator:s3cret-pw@127.0.0.1:{port}"
    with pytest.raises(QueueUnavailable) as refused:
        await JetStreamQueue(settings_for(url, tmp_path)).start()
    assert "ORCH_NATS_URL" in str(refused.value)
    assert f"127.0.0.1:{port}" in str(refused.value)
    assert "s3cret-pw" not in str(refused.value)

    server = NatsServer(tmp_path / "jetstream", port, "--user", "orchestrator", "--pass", "s3cret-pw")
    server.start()
    try:
        async with started(settings_for(url, tmp_path)) as work:
            await asyncio.to_thread(server.kill)
            with pytest.raises(QueueUnavailable) as lost:
                await work.publish("nowhere")
    finally:
        server.kill()
    message = str(lost.value)
    assert "ORCH_NATS_URL" in message
    assert "nowhere" in message
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message


async def test_a_server_that_lost_its_store_gets_the_stream_and_consumer_again(
    server: NatsServer, tmp_path: Path
) -> None:
    received: list[str] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.deliberation_id)
        await delivery.ack()

    async with started(settings_for(server.url, tmp_path)) as work:
        consumer = asyncio.create_task(work.consume(handler, 1))
        await work.publish("before")
        await until(lambda: received == ["before"])
        # The same port, an empty store: no stream, no consumer.
        await asyncio.to_thread(server.kill)
        server.store = tmp_path / "empty-store"
        await asyncio.to_thread(server.start)
        await work.publish("after")  # declares the stream again to store it
        await until(lambda: received == ["before", "after"])  # the consumer pulls again
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
