"""The record stores, each test on SQLite and on PostgreSQL: one interface, one behaviour."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from orchestrator_core.errors import InvalidRequest, RecordsUnavailable
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_core.records import DeliberationRecord, RecordedCheck, RecordQuery, RecordStatus, SQLiteStore
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.records.migrations import LATEST_VERSION
from orchestrator_core.records.paging import first_records
from orchestrator_core.records.postgres import PostgresStore
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.records.upkeep import RecordUpkeep
from orchestrator_core.settings import Settings

MakeStore = Callable[[], Awaitable[DeliberationStore]]


def running(
    created_at: float = 0.0, *, role: str = "DEV", owner: str = "owner-a", **changes: Any
) -> DeliberationRecord:
    record = DeliberationRecord(
        deliberation_id=uuid.uuid4().hex,
        kind="deliberate",
        role=role,
        task=Task(role=role, description="Write fizzbuzz"),
        status=RecordStatus.RUNNING,
        created_at=created_at or time.time(),
        owner=owner,
    )
    return replace(record, **changes)


async def execute(database_url: str, sql: str, params: tuple[object, ...] = ()) -> None:
    """Raw SQL on the test's database, for states the service never writes itself."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            connection.execute(sql, params)
        return
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        await connection.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]


async def test_a_record_round_trips_with_its_progress(make_store: MakeStore) -> None:
    store = await make_store()
    record = running()
    assert await store.create(record) is None
    proposal = Proposal("dev-1-v0", "dev-1", "DEV", "def fizzbuzz(): ...")
    check = RecordedCheck("dev-1-v0", CheckResult("lint", "lint", True, 0.75, ("ok",), 0.5))
    progressed = replace(record, proposals=(proposal,), checks=(check,), updated_at=time.time())
    await store.update(progressed)
    assert await store.get(record.deliberation_id) == progressed
    assert await store.get("no-such-id") is None


async def test_progress_never_overwrites_a_finished_record(make_store: MakeStore) -> None:
    store = await make_store()
    record = running()
    await store.create(record)
    finished = record.finished(RecordStatus.SUCCEEDED, time.time())
    await store.update(finished)
    await store.update(replace(record, error="late progress"))
    assert await store.get(record.deliberation_id) == finished


async def test_a_request_id_is_held_by_one_record(make_store: MakeStore) -> None:
    store = await make_store()
    first = running(request_id="req-1", request_fingerprint="same")
    assert await store.create(first) is None
    holder = await store.create(running(request_id="req-1", request_fingerprint="same"))
    assert holder == first
    assert [r.deliberation_id for r in (await store.list(RecordQuery())).records] == [first.deliberation_id]


async def test_a_failed_holder_gives_the_id_up_to_the_same_request_only(make_store: MakeStore) -> None:
    store = await make_store()
    first = running(request_id="req-1", request_fingerprint="same")
    await store.create(first)
    failed = first.finished(RecordStatus.FAILED, time.time(), error="down")
    await store.update(failed)
    other = running(request_id="req-1", request_fingerprint="different")
    assert await store.create(other) == failed  # a different request may not take it
    retry = running(request_id="req-1", request_fingerprint="same")
    assert await store.create(retry) is None
    assert await store.get_by_request("req-1") == retry
    assert await store.get(first.deliberation_id) == failed  # kept, for the audit trail


async def test_concurrent_claims_of_one_request_id_leave_one_holder(make_store: MakeStore) -> None:
    stores = [await make_store() for _ in range(3)]
    candidates = [running(request_id="req-x", request_fingerprint="f") for _ in range(12)]
    holders = await asyncio.gather(*(stores[i % 3].create(c) for i, c in enumerate(candidates)))
    winners = [c for c, holder in zip(candidates, holders, strict=True) if holder is None]
    assert len(winners) == 1
    assert {h.deliberation_id for h in holders if h is not None} == {winners[0].deliberation_id}


async def test_listing_filters_by_role_status_and_time(make_store: MakeStore) -> None:
    store = await make_store()
    records = [running(1000.0 + i, role="QA" if i % 2 else "DEV") for i in range(6)]
    for record in records:
        await store.create(record)
    await store.update(records[0].finished(RecordStatus.FAILED, 2000.0))

    async def ids(**query: Any) -> list[str]:
        return [r.deliberation_id for r in (await store.list(RecordQuery(**query))).records]

    newest_first = [r.deliberation_id for r in reversed(records)]
    assert await ids() == newest_first
    assert await ids(role="QA") == [records[i].deliberation_id for i in (5, 3, 1)]
    assert await ids(status=RecordStatus.FAILED) == [records[0].deliberation_id]
    assert await ids(created_after=1002.0, created_before=1004.0) == newest_first[2:4]
    assert await ids(created_after=1006.0) == []


async def test_pages_neither_repeat_nor_skip_records_written_meanwhile(make_store: MakeStore) -> None:
    store = await make_store()
    records = [running(1000.0 + i // 2) for i in range(7)]  # pairs share a creation time
    for record in records:
        await store.create(record)
    first = await store.list(RecordQuery(page_size=3))
    await store.create(running(5000.0))  # newer than everything: must not shift later pages
    second = await store.list(RecordQuery(page_size=3, page_token=first.next_page_token))
    third = await store.list(RecordQuery(page_size=3, page_token=second.next_page_token))
    listed = [r.deliberation_id for page in (first, second, third) for r in page.records]
    expected = sorted(records, key=lambda r: (-r.created_at, r.deliberation_id))
    assert listed == [r.deliberation_id for r in expected]
    assert third.next_page_token == ""


@pytest.mark.parametrize("token", ["garbage", "b2Zmc2V0Oi0x", "!!!!", "eyJjIjoiMSIsImkiOjJ9"])
async def test_a_foreign_page_token_is_refused(make_store: MakeStore, token: str) -> None:
    store = await make_store()
    with pytest.raises(InvalidRequest, match="page_token"):
        await store.list(RecordQuery(page_token=token))


async def test_a_page_cut_short_resumes_after_its_last_record(make_store: MakeStore) -> None:
    store = await make_store()
    records = [running(1000.0 + i) for i in range(5)]
    for record in records:
        await store.create(record)
    page = await store.list(RecordQuery(page_size=4))
    rest = await store.list(RecordQuery(page_token=first_records(page, 2).next_page_token))
    listed = [r.deliberation_id for r in (*page.records[:2], *rest.records)]
    assert listed == [r.deliberation_id for r in reversed(records)]


def test_a_store_writes_a_record_alone_whether_it_is_progress_or_finished() -> None:
    """Whether a write is final is the record's own status; the row decides what applies
    (see ``DeliberationStore.update``), so no store takes a flag for it."""
    for update in (DeliberationStore.update, SQLiteStore.update, PostgresStore.update):
        assert list(inspect.signature(update).parameters) == ["self", "record"]


async def test_only_records_of_dead_owners_are_interrupted(make_store: MakeStore, database_url: str) -> None:
    store = await make_store()
    for owner in ("live", "dead", "me"):
        await store.heartbeat(owner)
    await execute(database_url, "UPDATE replicas SET heartbeat_at = 0 WHERE owner = ?", ("dead",))
    live, dead, mine, unleased = (running(owner=o) for o in ("live", "dead", "me", "never-leased"))
    done = running(owner="dead")
    for record in (live, dead, mine, unleased, done):
        await store.create(record)
    await store.update(done.finished(RecordStatus.SUCCEEDED, time.time()))

    interrupted = await store.interrupt_orphans("me", lease_seconds=60.0)

    assert set(interrupted) == {dead.deliberation_id, unleased.deliberation_id}
    record = await store.get(dead.deliberation_id)
    assert record is not None
    assert (record.status, record.error_kind) == (RecordStatus.INTERRUPTED, "Interrupted")
    assert "stopped before it finished" in record.error
    assert record.finished_at is not None
    expected = ((live, RecordStatus.RUNNING), (mine, RecordStatus.RUNNING), (done, RecordStatus.SUCCEEDED))
    for untouched, status in expected:
        got = await store.get(untouched.deliberation_id)
        assert got is not None
        assert got.status is status
    # Without leases (one process owns the database), every other owner counts as dead.
    assert await store.interrupt_orphans("me", lease_seconds=None) == (live.deliberation_id,)


async def test_a_late_final_write_does_not_undo_an_interruption(make_store: MakeStore, database_url: str) -> None:
    store = await make_store()
    slow = running(owner="slow")
    await store.create(slow)
    await execute(database_url, "UPDATE replicas SET heartbeat_at = 0 WHERE owner = ?", ("slow",))
    assert await store.interrupt_orphans("me", lease_seconds=None) == (slow.deliberation_id,)
    # the slow replica was alive after all, and finishes: its request may have run again elsewhere
    await store.update(slow.finished(RecordStatus.SUCCEEDED, time.time()))
    record = await store.get(slow.deliberation_id)
    assert record is not None
    assert record.status is RecordStatus.INTERRUPTED


async def test_retention_deletes_old_finished_records_only(make_store: MakeStore) -> None:
    store = await make_store()
    old_done, old_running, new_done = running(1000.0), running(1000.0), running(3000.0)
    for record in (old_done, old_running, new_done):
        await store.create(record)
    for record in (old_done, new_done):
        await store.update(record.finished(RecordStatus.SUCCEEDED, 3001.0))
    assert await store.delete_before(2000.0) == 1
    assert await store.get(old_done.deliberation_id) is None
    assert await store.get(old_running.deliberation_id) is not None
    assert await store.get(new_done.deliberation_id) is not None


async def test_many_concurrent_writers_lose_nothing(make_store: MakeStore) -> None:
    stores = [await make_store() for _ in range(2)]
    records = [running() for _ in range(40)]

    async def write(i: int, record: DeliberationRecord) -> None:
        store = stores[i % 2]
        await store.create(record)
        for n in range(3):
            proposal = Proposal(f"p{n}", "dev-1", "DEV", f"version {n}", n)
            await store.update(replace(record, proposals=(proposal,) * (n + 1)))
        await store.update(record.finished(RecordStatus.SUCCEEDED, time.time()))

    await asyncio.gather(*(write(i, r) for i, r in enumerate(records)))
    page = await stores[0].list(RecordQuery(page_size=100))
    assert {r.deliberation_id for r in page.records} == {r.deliberation_id for r in records}
    assert all(r.status is RecordStatus.SUCCEEDED for r in page.records)


async def test_stores_opening_at_once_migrate_once(database_url: str) -> None:
    stores = [store_from_settings(Settings(database_url=database_url)) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        versions: list[int] = []
        if database_url.startswith("sqlite:///"):
            with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
                versions = [row[0] for row in connection.execute("SELECT version FROM schema_version")]
        else:
            async with await psycopg.AsyncConnection.connect(database_url) as connection:
                cursor = await connection.execute("SELECT version FROM schema_version")
                versions = [row[0] for row in await cursor.fetchall()]
        assert versions == list(range(1, LATEST_VERSION + 1))
        await stores[0].create(running())
        assert len((await stores[3].list(RecordQuery())).records) == 1
    finally:
        for store in stores:
            await store.close()


async def test_an_unreachable_postgresql_is_named_without_its_password() -> None:
    store = PostgresStore("postgresql://orch:sekret@127.0.0.1:1/records", connect_timeout=1)
    with pytest.raises(RecordsUnavailable) as raised:
        await store.open()
    message = str(raised.value)
    assert "postgresql://127.0.0.1:1/records" in message
    assert "ORCH_DATABASE_URL" in message
    assert "ORCH_DATABASE_POOL_SIZE" in message  # every connection is opened at start: the setting is named
    assert "sekret" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://orch@127.0.0.1:1/records?password=sekret", "postgresql://127.0.0.1:1/records?password=***"),
        ("http://alice:sekret@llm:8000/v1?api_key=sekret", "http://llm:8000/v1?api_key=***"),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1"),
    ],
)
def test_urls_lose_every_secret_before_any_message(url: str, shown: str) -> None:
    from orchestrator_core.redaction import redact_url

    assert redact_url(url) == shown


async def test_an_unversioned_sqlite_file_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE deliberations (deliberation_id TEXT PRIMARY KEY, record TEXT)")
    with pytest.raises(RecordsUnavailable, match="unversioned layout"):
        await SQLiteStore(path).open()


def test_the_settings_choose_the_store(tmp_path: Path) -> None:
    default = store_from_settings(Settings(database_path=tmp_path / "a.sqlite3"))
    assert isinstance(default, SQLiteStore)
    assert not default.shared
    postgres = store_from_settings(Settings(database_url="postgresql://orch:pw@db:5432/records"))
    assert isinstance(postgres, PostgresStore)
    assert postgres.shared
    assert isinstance(store_from_settings(Settings(database_url=f"sqlite:///{tmp_path}/b.db")), SQLiteStore)
    with pytest.raises(RecordsUnavailable, match="scheme 'mysql'"):
        store_from_settings(Settings(database_url="mysql://db/records"))


def test_the_database_url_is_a_secret_and_leases_must_outlive_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_DATABASE_URL", "postgresql://orch:sekret@db/records")
    settings = Settings()
    assert settings.database_url is not None
    assert "sekret" not in repr(settings)
    assert settings.record_retention_days == 0
    with pytest.raises(ValidationError, match="must exceed record_heartbeat_seconds"):
        Settings(record_heartbeat_seconds=10, record_lease_seconds=5)


async def test_processes_sharing_a_sqlite_file_leave_each_others_running_records_alone(tmp_path: Path) -> None:
    """serve --processes: a process starting on the file does not interrupt the records of a
    live one (each holds a lease, as replicas on PostgreSQL do); one process alone does."""
    settings = Settings(database_path=tmp_path / "records.sqlite3", processes=2)
    first, second = store_from_settings(settings), store_from_settings(settings)
    assert first.shared
    assert second.shared
    await first.open()
    await second.open()
    try:
        first_upkeep = RecordUpkeep(first, settings, "first")
        await first_upkeep.start()
        mine = running(owner="first")
        await first.create(mine)
        second_upkeep = RecordUpkeep(second, settings, "second")
        await second_upkeep.start()
        got = await second.get(mine.deliberation_id)
        assert got is not None
        assert got.status is RecordStatus.RUNNING
        await second_upkeep.stop()
        await first_upkeep.stop()
    finally:
        await first.close()
        await second.close()
    alone = store_from_settings(settings.model_copy(update={"processes": 1}))
    assert not alone.shared
    await alone.open()
    try:
        await RecordUpkeep(alone, settings, "alone").start()
        got = await alone.get(mine.deliberation_id)
        assert got is not None
        assert got.status is RecordStatus.INTERRUPTED
    finally:
        await alone.close()
