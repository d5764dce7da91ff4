"""SQLite record writes commit in groups: the writes made while a commit is in flight commit
together after it, each stored when it returns, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from core_support import HANG_GUARD, until

from orchestrator_core.errors import RecordsUnavailable
from orchestrator_core.models import Task
from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore
from orchestrator_core.records.sqlite import _Worker


class HeldFirstGroup(SQLiteStore):
    """The real store, noting the size of each group it commits; the first group's commit
    waits on its thread for ``release``, so the writes made meanwhile make the next group."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.groups: list[int] = []
        self.release = threading.Event()

    def _commit_group(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        self.groups.append(len(works))
        if len(self.groups) == 1:
            self.release.wait(HANG_GUARD)
        return super()._commit_group(works)


def running(deliberation_id: str) -> DeliberationRecord:
    return DeliberationRecord(deliberation_id, "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())


async def test_writes_made_while_a_commit_is_in_flight_commit_together_after_it(tmp_path: Path) -> None:
    store = HeldFirstGroup(tmp_path / "records.sqlite3")
    await store.open()
    first = asyncio.create_task(store.create(running("d0")))
    await until(lambda: store.groups == [1], "the first write's commit began")
    records = [running(f"d{n}") for n in range(1, 21)]
    creating = [asyncio.create_task(store.create(record)) for record in records]
    await asyncio.sleep(0.05)  # they wait for the commit in flight
    waited = [task.done() for task in [first, *creating]]
    store.release.set()
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(first, *creating)
    finishing = [store.update(record.finished(RecordStatus.SUCCEEDED, time.time())) for record in records]
    async with asyncio.timeout(HANG_GUARD):
        updated = await asyncio.gather(*finishing)
    await store.close()

    reopened = SQLiteStore(tmp_path / "records.sqlite3")
    await reopened.open()
    try:
        stored = [await reopened.get(f"d{n}") for n in range(21)]
    finally:
        await reopened.close()
    assert not any(waited)
    assert store.groups[:2] == [1, 20]  # the first write alone, then the twenty made meanwhile
    assert len(store.groups) < 2 + 20  # the updates, made at once, grouped too
    assert updated == [True] * 20
    assert [r.status if r else None for r in stored] == [RecordStatus.RUNNING] + [RecordStatus.SUCCEEDED] * 20


async def test_a_write_that_fails_in_a_group_fails_alone(tmp_path: Path) -> None:
    store = HeldFirstGroup(tmp_path / "records.sqlite3")
    await store.open()
    first = asyncio.create_task(store.create(running("d0")))
    await until(lambda: store.groups == [1], "the first write's commit began")
    before, twice, after = (asyncio.create_task(store.create(running(i))) for i in ("d1", "d1", "d2"))
    finished = asyncio.create_task(store.update(running("d0").finished(RecordStatus.SUCCEEDED, time.time())))
    await asyncio.sleep(0)
    store.release.set()
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(first, before, after, finished)
        with pytest.raises(sqlite3.IntegrityError):
            await twice
    try:
        stored = {i: await store.get(i) for i in ("d0", "d1", "d2")}
    finally:
        await store.close()

    assert store.groups == [1, 4]
    assert finished.result() is True
    assert {i: r.status if r else None for i, r in stored.items()} == {
        "d0": RecordStatus.SUCCEEDED,
        "d1": RecordStatus.RUNNING,
        "d2": RecordStatus.RUNNING,
    }


async def test_a_write_withdrawn_while_it_waits_for_the_commit_in_flight_is_not_made(tmp_path: Path) -> None:
    """A caller that gives up (its deadline) before its group is handed over leaves nothing:
    no record running for ever without a runner."""
    store = HeldFirstGroup(tmp_path / "records.sqlite3")
    await store.open()
    first = asyncio.create_task(store.create(running("d0")))
    await until(lambda: store.groups == [1], "the first write's commit began")
    withdrawn = asyncio.create_task(store.create(running("d1")))
    kept = asyncio.create_task(store.create(running("d2")))
    await asyncio.sleep(0)
    withdrawn.cancel()
    store.release.set()
    async with asyncio.timeout(HANG_GUARD):
        await asyncio.gather(first, kept)
    try:
        stored = {i: await store.get(i) for i in ("d0", "d1", "d2")}
    finally:
        await store.close()

    assert withdrawn.cancelled()
    assert store.groups == [1, 1]
    assert [i for i, r in stored.items() if r is not None] == ["d0", "d2"]


class FailingFirstGroup(HeldFirstGroup):
    """The first group's commit fails as a lost disk would (after its hold)."""

    def _commit_group(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        if not self.groups:
            self.groups.append(len(works))
            self.release.wait(HANG_GUARD)
            raise RecordsUnavailable("the disk went away")
        return super()._commit_group(works)


async def test_a_group_whose_commit_fails_fails_every_write_in_it_and_the_next_group_commits(tmp_path: Path) -> None:
    store = FailingFirstGroup(tmp_path / "records.sqlite3")
    await store.open()
    first = asyncio.create_task(store.create(running("d0")))
    await until(lambda: store.groups == [1], "the first write's commit began")
    later = asyncio.create_task(store.create(running("d1")))
    await asyncio.sleep(0)
    store.release.set()
    async with asyncio.timeout(HANG_GUARD):
        with pytest.raises(RecordsUnavailable, match="the disk went away"):
            await first
        assert await later is None
    try:
        assert (await store.get("d0"), await store.get("d1") is not None) == (None, True)
    finally:
        await store.close()
    assert store.groups == [1, 1]


async def test_closing_waits_for_the_commit_in_flight(tmp_path: Path) -> None:
    store = HeldFirstGroup(tmp_path / "records.sqlite3")
    await store.open()
    write = asyncio.create_task(store.create(running("d0")))
    await until(lambda: store.groups == [1], "the write's commit began")
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    store.release.set()
    async with asyncio.timeout(HANG_GUARD):
        assert await write is None
        await closing
    reopened = SQLiteStore(tmp_path / "records.sqlite3")
    await reopened.open()
    try:
        assert (await reopened.get("d0")) is not None
    finally:
        await reopened.close()


async def test_the_stores_thread_hands_a_posted_calls_outcome_to_its_loop() -> None:
    worker = _Worker("test-worker")
    loop_thread = threading.get_ident()
    outcomes: list[tuple[object, object, bool]] = []
    done = asyncio.Event()

    def note(result: object, error: BaseException | None) -> None:
        outcomes.append((result, type(error).__name__ if error else None, threading.get_ident() == loop_thread))
        if len(outcomes) == 2:
            done.set()

    def broken() -> None:
        raise ValueError("no")

    worker.post(lambda: 42, note)
    worker.post(broken, note)
    try:
        async with asyncio.timeout(HANG_GUARD):
            await done.wait()
            assert await worker.call(lambda: "after") == "after"  # in the order they came
    finally:
        worker.stop()
    assert outcomes == [(42, None, True), (None, "ValueError", True)]
