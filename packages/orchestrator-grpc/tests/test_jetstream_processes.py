"""Queued deliberations across real processes: ``orchestrator serve`` fronts that run nothing
(ORCH_QUEUE_WORKERS=0) and ``orchestrator worker`` processes, over a nats-server of the
test's own and a PostgreSQL schema of the test's own.

- Submit to one front, Watch from another, run by a worker; Cancel through a front stops the
  run on the worker holding it; one request_id submitted to two fronts is one deliberation.
- Workers killed with SIGKILL mid-run: every deliberation finishes, complete, and no agent
  call whose result was stored runs again (see the test's docstring for how that is exact).
- The nats-server killed and restarted mid-run (same store, same port): nothing is lost.
- A deliberation that kills every worker it reaches fails WorkerLost after max_deliver.

The agents are the ``slow`` backend of ``plugin_path/queue_test_plugin.py``: each call
sleeps, then appends a line (task key, agent, phase, round, pid) to a shared log just before
it returns.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD
from nats_support import NatsServer
from queue_processes import (
    FINISH_SECONDS,
    Cluster,
    Process,
    RecordReader,
    cluster_for,
    logged_calls,
    task,
    watch_to_the_end,
)

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.records.model import DeliberationRecord, RecordStatus
from orchestrator_grpc.client import OrchestratorClient

WORKER_LOST = "WorkerLost"


@pytest.fixture
def call_log(tmp_path: Path) -> Path:
    return tmp_path / "calls.log"


@pytest.fixture
def cluster(tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path) -> Iterator[Cluster]:
    started = cluster_for(tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="0.2")
    yield started
    started.stop_all()


async def until_final(reader: RecordReader, ids: list[str], cluster: Cluster) -> list[DeliberationRecord]:
    try:
        async with asyncio.timeout(FINISH_SECONDS):
            while True:
                found = [await reader.get(i) for i in ids]
                if all(r.status.finished for r in found):
                    return found
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"not every deliberation finished; the processes' logs:\n{cluster.logs()}")


def call_keys(record: DeliberationRecord) -> Counter[tuple[str, str, int]]:
    return Counter((c.agent_id, c.phase.value, c.round) for c in record.calls)


def shape(record: DeliberationRecord) -> tuple[object, ...]:
    """What an uninterrupted run of the same request holds, whatever its ids and times."""
    return (
        record.status,
        sorted(call_keys(record).items()),
        sorted((p.author_id, p.revision) for p in record.proposals),
        sorted((c.critic_id, c.author_id, c.round) for c in record.critiques),
        sorted((c.result.name, c.result.passed) for c in record.checks),
        len(record.outcome.results) if record.outcome is not None else -1,
        record.usage,
    )


async def test_submitted_to_one_front_watched_from_another_run_by_a_worker(
    cluster: Cluster, reader: RecordReader, call_log: Path
) -> None:
    first, second = cluster.front(), cluster.front()
    cluster.worker()
    async with OrchestratorClient(first.address) as client:
        submitted = await client.submit(task("watched"), request_id="one-request")
    assert submitted.status == pb.DELIBERATION_STATUS_QUEUED
    events = await watch_to_the_end(second, submitted.deliberation_id)
    finished = events[-1]
    assert finished.WhichOneof("event") == "finished"
    assert finished.finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = Counter(e.WhichOneof("event") for e in events)
    assert kinds == {"proposal_generated": 3, "critique": 3, "revision": 3, "check": 3, "ranking": 1, "finished": 1}
    # A watch from a resume point replays only what came after it, from the first front too.
    replay = await watch_to_the_end(first, submitted.deliberation_id, after=5)
    assert [e.sequence for e in replay] == list(range(6, len(events) + 1))
    record = await reader.get(submitted.deliberation_id)
    assert record.status is RecordStatus.SUCCEEDED
    assert record.queued
    assert len(logged_calls(call_log)) == 9  # the fronts run nothing; the worker ran each call once

    # The same request_id through the other front: the same deliberation, not a second one.
    async with OrchestratorClient(second.address) as client:
        again = await client.submit(task("watched"), request_id="one-request")
    assert again.deliberation_id == submitted.deliberation_id
    assert again.status == pb.DELIBERATION_STATUS_SUCCEEDED
    assert len(logged_calls(call_log)) == 9


async def test_one_request_id_submitted_to_two_fronts_at_once_is_one_deliberation(cluster: Cluster) -> None:
    fronts = [cluster.front(), cluster.front()]
    cluster.worker()

    async def submit(front: Process) -> str:
        async with OrchestratorClient(front.address) as client:
            response = await client.submit(task("twice"), request_id="twice-submitted")
            return response.deliberation_id

    ids = await asyncio.gather(*(submit(front) for front in fronts for _ in range(3)))
    assert len(set(ids)) == 1
    events = await watch_to_the_end(fronts[1], ids[0])
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED


async def test_cancel_through_a_front_stops_the_run_on_the_worker_holding_it(
    tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path, reader: RecordReader
) -> None:
    cluster = cluster_for(tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="2")
    try:
        first, second = cluster.front(), cluster.front()
        worker = cluster.worker()
        async with OrchestratorClient(first.address) as client:
            submitted = await client.submit(task("cancelled"))
        async with asyncio.timeout(HANG_GUARD):
            while (await reader.get(submitted.deliberation_id)).status is not RecordStatus.RUNNING:
                await asyncio.sleep(0.05)
        async with OrchestratorClient(second.address) as client:
            answer = await client.cancel(submitted.deliberation_id)
        assert answer.status in (pb.DELIBERATION_STATUS_RUNNING, pb.DELIBERATION_STATUS_CANCELLED)
        events = await watch_to_the_end(first, submitted.deliberation_id)
        assert events[-1].finished.status == pb.DELIBERATION_STATUS_CANCELLED
        record = await reader.get(submitted.deliberation_id)
        assert record.status is RecordStatus.CANCELLED
        assert len(record.calls) < 9  # stopped before its end
        assert worker.alive  # the worker stopped the run, not itself
    finally:
        cluster.stop_all()


async def test_workers_killed_mid_run_lose_nothing_and_repeat_no_stored_call(
    tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path, reader: RecordReader
) -> None:
    """3 workers, 30 deliberations, two workers SIGKILLed at random moments while they run
    (each once it has made calls of a deliberation that still has a phase to go).

    How "no completed agent call repeated" is exact: each agent appends its line just before
    it returns, so a call can complete (its line written) in a worker killed before the call's
    checkpoint — the write of its result to the record — lands; the next worker, resuming
    from the record, must then make that call again. Such a repeat is legitimate, and only
    such a one: a repeated (deliberation, agent, phase, round) must have exactly two lines,
    the first from a worker this test killed, and the record's one entry for that call must
    have started after that kill (the record does not hold the first call: it never landed).
    Any other repeat — a call stored and still made again — fails the test.
    """
    cluster = cluster_for(
        tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="0.3",
        ORCH_QUEUE_ACK_WAIT_SECONDS="2", ORCH_QUEUE_WORKERS="3",
    )
    try:
        front = cluster.front()
        workers = [cluster.worker() for _ in range(3)]
        async with OrchestratorClient(front.address) as client:
            reference = await client.submit(task("reference"))
            await watch_to_the_end(front, reference.deliberation_id)
            ids = [(await client.submit(task(f"d{n:02d}"))).deliberation_id for n in range(30)]
        keys = {f"d{n:02d}": deliberation_id for n, deliberation_id in enumerate(ids)}
        killed: dict[int, float] = {}  # pid -> when it was killed
        chooser = random.Random()
        for victim in chooser.sample(workers, 2):
            await asyncio.sleep(chooser.uniform(0.2, 1.5))
            await until_mid_run(victim, call_log)
            assert victim.alive
            killed[victim.pid] = time.time()  # before the signal: a call stored earlier started before it
            victim.kill()
        records = await until_final(reader, ids, cluster)
        expected = shape(await reader.get(reference.deliberation_id))
    finally:
        cluster.stop_all()

    assert [r.status for r in records] == [RecordStatus.SUCCEEDED] * 30, cluster.logs()
    by_id = {r.deliberation_id: r for r in records}
    for record in records:
        assert shape(record) == expected, record.deliberation_id
        assert all(count == 1 for count in call_keys(record).values())

    lines = [line for line in logged_calls(call_log) if line[0] in keys]
    per_call = Counter((key, agent, phase, round_number) for key, agent, phase, round_number, _ in lines)
    repeated = {call: count for call, count in per_call.items() if count > 1}
    for key, agent, phase, round_number in repeated:
        assert repeated[(key, agent, phase, round_number)] == 2
        first = next(line for line in lines if line[:4] == (key, agent, phase, round_number))
        assert first[4] in killed, f"{first} repeated though its worker was not killed"
        stored = next(
            c for c in by_id[keys[key]].calls if (c.agent_id, c.phase.value, c.round) == (agent, phase, round_number)
        )
        assert stored.started_at >= killed[first[4]], f"{first} was stored, then made again"

    # Every deliberation a killed worker worked on and another finished says a worker was lost.
    pids_by_key: dict[str, set[int]] = {}
    for key, _, _, _, pid in lines:
        pids_by_key.setdefault(key, set()).add(pid)
    resumed = {key for key, pids in pids_by_key.items() if pids & killed.keys() and pids - killed.keys()}
    noted = {key for key, i in keys.items() if any("worker lost" in f.error for f in by_id[i].failures)}
    # Each kill cut the runs its worker held (3 at once, the queue was far from drained).
    assert resumed, "no deliberation was cut by a kill: the kills came too late to test anything"
    assert resumed <= noted, resumed - noted
    print(
        f"kill test: 30/30 succeeded, {len(lines)} call lines for {len(per_call)} calls, "
        f"{len(repeated)} repeated (completed, not yet stored when killed), {len(noted)} deliberations "
        f"resumed after a lost worker ({len(resumed)} of them with calls made by the killed one)"
    )


async def until_mid_run(worker: Process, call_log: Path) -> None:
    """Until ``worker`` has made calls of a deliberation that still has a whole phase to go
    (6 of its 9 calls at most): killed now, the next worker resumes it and makes the rest."""
    async with asyncio.timeout(HANG_GUARD):
        while True:
            lines = logged_calls(call_log)
            made = Counter(line[0] for line in lines)
            if any(line[4] == worker.pid and made[line[0]] <= 6 for line in lines):
                return
            await asyncio.sleep(0.01)


async def test_a_restart_of_the_nats_server_mid_run_loses_nothing(
    tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path, reader: RecordReader
) -> None:
    cluster = cluster_for(
        tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="0.3", ORCH_QUEUE_WORKERS="2"
    )
    try:
        front = cluster.front()
        workers = [cluster.worker(), cluster.worker()]
        async with OrchestratorClient(front.address) as client:
            ids = [(await client.submit(task(f"r{n:02d}"))).deliberation_id for n in range(12)]
            async with asyncio.timeout(HANG_GUARD):
                while RecordStatus.RUNNING not in [(await reader.get(i)).status for i in ids]:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(nats.restart, 1.0)
            # The front and the workers come back to it: more work submitted after the restart.
            async with asyncio.timeout(HANG_GUARD):
                while True:
                    try:
                        ids += [(await client.submit(task(f"s{n:02d}"))).deliberation_id for n in range(4)]
                        break
                    except Exception:  # the front may still be reconnecting
                        await asyncio.sleep(0.2)
        records = await until_final(reader, ids, cluster)
        assert all(w.alive for w in workers)
    finally:
        cluster.stop_all()
    assert [r.status for r in records] == [RecordStatus.SUCCEEDED] * len(ids), cluster.logs()
    per_call = Counter(line[:4] for line in logged_calls(call_log))
    assert len(per_call) == 9 * len(ids)
    assert set(per_call.values()) == {1}  # no worker was lost: no call made twice


async def test_a_deliberation_that_kills_every_worker_fails_worker_lost_after_max_deliver(
    tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path, reader: RecordReader
) -> None:
    cluster = cluster_for(
        tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="0.05",
        ORCH_QUEUE_ACK_WAIT_SECONDS="1", ORCH_QUEUE_MAX_DELIVER="2",
    )
    try:
        front = cluster.front()
        async with OrchestratorClient(front.address) as client:
            submitted = await client.submit(task("doomed", "CRASH-THE-WORKER when generating"))
        deaths: list[int] = []
        worker = cluster.worker()
        async with asyncio.timeout(FINISH_SECONDS):
            while not (record := await reader.get(submitted.deliberation_id)).status.finished:
                if not worker.alive:
                    deaths.append(worker.process.returncode)
                    worker = cluster.worker()
                await asyncio.sleep(0.1)
        assert worker.alive  # the last delivery failed the record instead of running it
    finally:
        cluster.stop_all()
    assert deaths == [17, 17]  # one crash per delivery, max_deliver = 2 deliveries
    assert record.status is RecordStatus.FAILED
    assert record.error_kind == WORKER_LOST
    assert "ORCH_QUEUE_MAX_DELIVER" in record.error
