"""The PostgreSQL store under a burst: its pool is open at full size before the first write,
so a burst of deliberations never waits for a connection to be made, and every write of the
burst is stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import psycopg
import pytest

from orchestrator_core.models import Task
from orchestrator_core.records.model import DeliberationRecord, RecordQuery, RecordStatus
from orchestrator_core.records.postgres import PostgresStore

POOL_SIZE = 3


async def connections_named(url: str, application_name: str) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


def running(request_id: str = "") -> DeliberationRecord:
    return DeliberationRecord(
        deliberation_id=uuid.uuid4().hex,
        kind="deliberate",
        role="DEV",
        task=Task(role="DEV", description="Write fizzbuzz"),
        status=RecordStatus.RUNNING,
        created_at=time.time(),
        owner="owner-a",
        request_id=request_id,
        request_fingerprint="f" if request_id else "",
    )


async def test_a_burst_finds_the_pool_full_and_every_write_is_stored(postgres_schema_url: str) -> None:
    name = f"orchestrator-test-{uuid.uuid4().hex[:12]}"
    store = PostgresStore(f"{postgres_schema_url}&application_name={name}", pool_size=POOL_SIZE)
    await store.open()
    try:
        assert await connections_named(postgres_schema_url, name) == POOL_SIZE  # before any write
        records = [running(request_id=f"r{n}" if n % 4 == 0 else "") for n in range(40)]

        async def deliberate(record: DeliberationRecord) -> None:
            assert await store.create(record) is None
            assert await store.update(replace(record, updated_at=time.time()))
            assert await store.update(record.finished(RecordStatus.SUCCEEDED, time.time()))

        await asyncio.gather(*(deliberate(record) for record in records))
        assert await connections_named(postgres_schema_url, name) == POOL_SIZE
        page = await store.list(RecordQuery(page_size=100))
        assert {r.deliberation_id for r in page.records} == {r.deliberation_id for r in records}
        assert all(r.status is RecordStatus.SUCCEEDED for r in page.records)
        held = await store.get_by_request("r4")
        assert held is not None
        assert held.deliberation_id == records[4].deliberation_id
    finally:
        await store.close()


async def test_a_record_without_a_request_id_is_created_once(postgres_schema_url: str) -> None:
    store = PostgresStore(postgres_schema_url, pool_size=POOL_SIZE)
    await store.open()
    try:
        record = running()
        assert await store.create(record) is None
        assert await store.get(record.deliberation_id) == record
        with pytest.raises(psycopg.IntegrityError):
            await store.create(record)
        assert len((await store.list(RecordQuery())).records) == 1
    finally:
        await store.close()
