"""The record stores' part in queued deliberations, each test on SQLite and on PostgreSQL:
taking a record over, owner-checked writes, cancel requests, and which records the lease
sweep leaves to a durable queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from orchestrator_core.errors import InvalidRequest
from orchestrator_core.models import Proposal, Task
from orchestrator_core.records import DeliberationRecord, RecordStatus
from orchestrator_core.records.idempotency import claim, hold
from orchestrator_core.records.store import DeliberationStore

MakeStore = Callable[[], Awaitable[DeliberationStore]]


class CountingCreates:
    """A store that counts ``create`` calls and says when a holder was polled."""

    def __init__(self, store: DeliberationStore) -> None:
        self._store = store
        self.creates = 0
        self.polled = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create(self, record: DeliberationRecord) -> DeliberationRecord | None:
        self.creates += 1
        return await self._store.create(record)

    async def get_by_request(self, request_id: str) -> DeliberationRecord | None:
        holder = await self._store.get_by_request(request_id)
        self.polled.set()
        return holder


def queued(*, owner: str = "front", **changes: Any) -> DeliberationRecord:
    now = time.time()
    record = DeliberationRecord(
        deliberation_id=uuid.uuid4().hex,
        kind="deliberate",
        role="DEV",
        task=Task(role="DEV", description="Write fizzbuzz"),
        status=RecordStatus.QUEUED,
        created_at=now,
        updated_at=now,
        owner=owner,
        queued=True,
        deadline_at=now + 60,
    )
    return replace(record, **changes)


async def lapse(database_url: str, owner: str) -> None:
    """``owner``'s lease, as if its process died long ago."""
    statement = "UPDATE replicas SET heartbeat_at = 0 WHERE owner = ?"
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            connection.execute(statement, (owner,))
        return
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute(statement.replace("?", "%s"), (owner,))  # type: ignore[arg-type]


async def test_a_queued_record_round_trips(make_store: MakeStore) -> None:
    store = await make_store()
    record = queued()
    assert await store.create(record) is None
    assert await store.get(record.deliberation_id) == record


async def test_take_makes_the_taker_the_only_writer(make_store: MakeStore) -> None:
    store = await make_store()
    record = queued()
    await store.create(record)
    first = await store.take(record.deliberation_id, "worker-1")
    assert first is not None
    assert (first.status, first.owner) == (RecordStatus.RUNNING, "worker-1")
    progressed = replace(first, proposals=(Proposal("dev-1-v0", "dev-1", "DEV", "v0"),))
    assert await store.update(progressed) is True
    second = await store.take(record.deliberation_id, "worker-2")  # the first worker was lost
    assert second is not None
    assert (second.status, second.owner, second.proposals) == (RecordStatus.RUNNING, "worker-2", progressed.proposals)
    late = replace(progressed, proposals=(), error="late write of the lost worker")
    assert await store.update(late) is False
    assert await store.update(late.finished(RecordStatus.SUCCEEDED, time.time())) is False
    assert await store.get(record.deliberation_id) == second
    final = second.finished(RecordStatus.SUCCEEDED, time.time())
    assert await store.update(final) is True
    assert await store.take(record.deliberation_id, "worker-3") is None  # final: nothing to take
    assert await store.take("no-such-id", "worker-3") is None
    assert await store.get(record.deliberation_id) == final


async def test_concurrent_takes_leave_one_owner_whose_writes_count(make_store: MakeStore) -> None:
    stores = [await make_store() for _ in range(3)]
    record = queued()
    await stores[0].create(record)
    taken = await asyncio.gather(*(s.take(record.deliberation_id, f"worker-{i}") for i, s in enumerate(stores)))
    assert all(t is not None for t in taken)
    stored = await stores[0].get(record.deliberation_id)
    assert stored is not None
    writes = [await s.update(replace(stored, owner=f"worker-{i}")) for i, s in enumerate(stores)]
    assert writes == [f"worker-{i}" == stored.owner for i in range(3)]
    assert writes.count(True) == 1


async def test_a_cancel_ends_a_queued_record_and_flags_a_running_one(make_store: MakeStore) -> None:
    store = await make_store()
    waiting, running, done = queued(), queued(), queued()
    for record in (waiting, running, done):
        await store.create(record)
    cancelled = await store.request_cancel(waiting.deliberation_id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.error_kind) == (RecordStatus.CANCELLED, "Cancelled")
    assert cancelled.error == "cancelled"
    assert cancelled.finished_at is not None
    assert await store.take(waiting.deliberation_id, "worker") is None  # no worker runs it now

    taken = await store.take(running.deliberation_id, "worker")
    assert taken is not None
    flagged = await store.request_cancel(running.deliberation_id)
    assert flagged is not None
    assert (flagged.status, flagged.cancel_requested) == (RecordStatus.RUNNING, True)
    assert await store.update(replace(taken, error="progress")) is True  # the runner's writes keep the flag
    still = await store.get(running.deliberation_id)
    assert still is not None
    assert (still.error, still.cancel_requested) == ("progress", True)

    taken_done = await store.take(done.deliberation_id, "worker")
    assert taken_done is not None
    final = taken_done.finished(RecordStatus.SUCCEEDED, time.time())
    await store.update(final)
    assert await store.request_cancel(done.deliberation_id) == final
    assert await store.request_cancel("no-such-id") is None


async def test_the_sweep_leaves_queued_records_to_a_durable_queue(make_store: MakeStore, database_url: str) -> None:
    store = await make_store()
    await store.heartbeat("dead")
    waiting = queued(owner="dead")
    running_queued = queued(owner="front")
    direct = replace(queued(owner="dead"), status=RecordStatus.RUNNING, queued=False)
    for record in (waiting, running_queued, direct):
        await store.create(record)
    assert await store.take(running_queued.deliberation_id, "dead") is not None
    await lapse(database_url, "dead")

    swept = await store.interrupt_orphans("me", lease_seconds=60.0, queue_redelivers=True)

    assert swept == (direct.deliberation_id,)  # the lease path still applies to direct runs
    for record, status in ((waiting, RecordStatus.QUEUED), (running_queued, RecordStatus.RUNNING)):
        got = await store.get(record.deliberation_id)
        assert got is not None
        assert got.status is status


async def test_without_a_durable_queue_the_sweep_interrupts_queued_records_too(make_store: MakeStore) -> None:
    store = await make_store()
    waiting = queued(owner="gone")
    await store.create(waiting)
    assert await store.interrupt_orphans("me", lease_seconds=None) == (waiting.deliberation_id,)
    got = await store.get(waiting.deliberation_id)
    assert got is not None
    assert (got.status, got.error_kind) == (RecordStatus.INTERRUPTED, "Interrupted")


async def test_retention_keeps_queued_records(make_store: MakeStore) -> None:
    store = await make_store()
    old = queued(created_at=1000.0)
    await store.create(old)
    assert await store.delete_before(2000.0) == 0
    assert await store.get(old.deliberation_id) is not None


async def test_a_queued_holder_of_a_request_id_is_in_progress(make_store: MakeStore) -> None:
    store = await make_store()
    first = queued(request_id="req-q", request_fingerprint="same")
    assert await hold(store, first) is None
    repeat = queued(request_id="req-q", request_fingerprint="same")
    assert await hold(store, repeat) == first  # a repeated submit gets the queued record at once
    counting = CountingCreates(store)
    direct = queued(request_id="req-q", request_fingerprint="same")
    waiting = asyncio.get_running_loop().create_task(claim(counting, direct))  # type: ignore[arg-type]
    taken = await store.take(first.deliberation_id, "worker")
    assert taken is not None
    await counting.polled.wait()
    final = taken.finished(RecordStatus.SUCCEEDED, time.time())
    await store.update(final)
    assert await asyncio.wait_for(waiting, 30) == final
    assert counting.creates == 1  # it waited on the queued holder instead of trying to take it
    with pytest.raises(InvalidRequest, match="different request"):
        await hold(store, queued(request_id="req-q", request_fingerprint="other"))
