"""Several processes on one SQLite file (``serve --processes N``): their writes queue on a lock
file beside the database instead of sleeping in SQLite's busy handler, and none is lost."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from core_support import HANG_GUARD, until

from orchestrator_core.errors import RecordsUnavailable
from orchestrator_core.models import Task
from orchestrator_core.records import DeliberationRecord, RecordQuery, RecordStatus, SQLiteStore

WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from orchestrator_core.models import Task
    from orchestrator_core.records import DeliberationRecord, RecordStatus, SQLiteStore

    async def main(path: str, name: str, count: int, go: str) -> None:
        store = SQLiteStore(path, shared=True)
        await store.open()
        Path(f"{go}.{name}").touch()
        while not Path(go).exists():  # both processes start writing together
            await asyncio.sleep(0.001)
        for n in range(count):
            record = DeliberationRecord(
                f"{name}-{n}", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time(), owner=name
            )
            await store.create(record)
            assert await store.update(record.finished(RecordStatus.SUCCEEDED, time.time()))
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    """
)


async def test_two_processes_writing_at_once_both_succeed_and_lose_nothing(tmp_path: Path) -> None:
    path, go, count = tmp_path / "records.sqlite3", tmp_path / "go", 150
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(count), str(go)], stderr=subprocess.PIPE)
        for name in ("first", "second")
    ]
    await until(lambda: all(Path(f"{go}.{name}").exists() for name in ("first", "second")), "both opened the file")
    go.touch()
    errors = [writer.communicate(timeout=HANG_GUARD)[1].decode() for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], errors

    store = SQLiteStore(path)
    await store.open()
    try:
        page = await store.list(RecordQuery(page_size=1000))
    finally:
        await store.close()
    assert sorted(r.deliberation_id for r in page.records) == sorted(
        f"{name}-{n}" for name in ("first", "second") for n in range(count)
    )
    assert {r.status for r in page.records} == {RecordStatus.SUCCEEDED}
    assert (path.parent / "records.sqlite3.lock").exists()


async def test_a_shared_store_writes_only_holding_the_lock_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3", shared=True)
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    held = os.open(tmp_path / "records.sqlite3.lock", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process writing would
        creating = asyncio.create_task(store.create(record))
        reading = await store.get("d1")  # a read does not wait for the lock
        await asyncio.sleep(0.2)
        waited = not creating.done()
        fcntl.flock(held, fcntl.LOCK_UN)
        async with asyncio.timeout(HANG_GUARD):
            await creating
        stored = await store.get("d1")
    finally:
        os.close(held)
        await store.close()

    assert reading is None
    assert waited
    assert stored == record


async def test_a_lock_held_past_the_busy_timeout_fails_the_write_and_the_next_one_succeeds(tmp_path: Path) -> None:
    """A process that stopped holding the lock (SIGSTOP, a debugger) fails writes, not hangs them."""
    store = SQLiteStore(tmp_path / "records.sqlite3", shared=True, busy_timeout=0.2)
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    held = os.open(tmp_path / "records.sqlite3.lock", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RecordsUnavailable, match=r"records\.sqlite3\.lock"):
            async with asyncio.timeout(HANG_GUARD):
                await store.create(record)
        fcntl.flock(held, fcntl.LOCK_UN)
        async with asyncio.timeout(HANG_GUARD):
            await store.create(record)
        stored = await store.get("d1")
    finally:
        os.close(held)
        await store.close()
    assert stored == record


async def test_a_store_of_one_process_takes_no_lock_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "records.sqlite3")
    await store.open()
    record = DeliberationRecord("d1", "deliberate", "DEV", Task("DEV", "x"), RecordStatus.RUNNING, time.time())
    await store.create(record)
    await store.close()
    assert not (tmp_path / "records.sqlite3.lock").exists()
