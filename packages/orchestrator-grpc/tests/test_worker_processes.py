"""``orchestrator worker`` as a process: stopped by SIGTERM it hands back what it cannot finish
in its grace period and exits 0; without ORCH_NATS_URL it refuses to start; with a metrics
port it serves metrics of what it ran. Over a nats-server and a PostgreSQL schema of the
test's own, agents of ``plugin_path/queue_test_plugin.py``.
"""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD
from metrics_support import parse, total
from nats_support import NatsServer
from queue_processes import (
    Cluster,
    RecordReader,
    cluster_for,
    environment,
    logged_calls,
    orchestrator_command,
    task,
    watch_to_the_end,
)

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.records.model import RecordStatus
from orchestrator_grpc.client import OrchestratorClient


@pytest.fixture
def cluster(tmp_path: Path, nats: NatsServer, database_url: str) -> Iterator[Cluster]:
    started = cluster_for(tmp_path, nats, database_url, tmp_path / "calls.log", QUEUE_TEST_CALL_SECONDS="0.2")
    yield started
    started.stop_all()


async def test_a_worker_stopped_by_sigterm_hands_back_what_it_cannot_finish(
    tmp_path: Path, nats: NatsServer, database_url: str, reader: RecordReader
) -> None:
    """Its grace period (1 s) is shorter than the run: the run stores its progress, the
    delivery goes back at once (no ack wait: 600 s here), the worker exits 0, and the next
    worker resumes the run without making a stored call again."""
    call_log = tmp_path / "calls.log"
    cluster = cluster_for(
        tmp_path, nats, database_url, call_log, QUEUE_TEST_CALL_SECONDS="1",
        ORCH_GRACE_PERIOD_SECONDS="1", ORCH_QUEUE_ACK_WAIT_SECONDS="600",
    )
    try:
        front = cluster.front()
        first = cluster.worker()
        async with OrchestratorClient(front.address) as client:
            submitted = await client.submit(task("handed"))
        async with asyncio.timeout(HANG_GUARD):
            while len((await reader.get(submitted.deliberation_id)).calls) < 3:  # generated, now critiquing
                await asyncio.sleep(0.05)
        assert await asyncio.to_thread(first.terminate) == 0
        stopped = await reader.get(submitted.deliberation_id)
        assert stopped.status is RecordStatus.RUNNING  # handed back, not finished nor failed
        cluster.worker()
        events = await watch_to_the_end(front, submitted.deliberation_id)
    finally:
        cluster.stop_all()
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    record = await reader.get(submitted.deliberation_id)
    completed = Counter((c.agent_id, c.phase.value, c.round) for c in record.calls if c.outcome.value == "ok")
    assert len(completed) == 9
    assert set(completed.values()) == {1}
    per_call = Counter(line[:4] for line in logged_calls(call_log))
    assert len(per_call) == 9
    assert set(per_call.values()) == {1}
    assert {line[4] for line in logged_calls(call_log)} >= {first.pid}  # both workers made calls


def test_a_worker_without_a_nats_url_refuses_to_start(tmp_path: Path) -> None:
    env = environment(tmp_path, "", "sqlite:///" + str(tmp_path / "records.sqlite3"))
    del env["ORCH_NATS_URL"]
    done = subprocess.run(
        [orchestrator_command(), "worker"], env=env, capture_output=True, text=True, timeout=HANG_GUARD
    )
    assert done.returncode == 2
    assert "ORCH_NATS_URL" in done.stderr


async def test_a_worker_serves_metrics_of_what_it_ran(cluster: Cluster, reader: RecordReader) -> None:
    front = cluster.front()
    worker = cluster.worker(ORCH_METRICS_PORT="0")
    line = worker.next_line()
    assert line.startswith("orchestrator metrics on http://127.0.0.1:"), line
    url = line.removeprefix("orchestrator metrics on ").strip()
    async with OrchestratorClient(front.address) as client:
        submitted = await client.submit(task("measured"))
    events = await watch_to_the_end(front, submitted.deliberation_id)
    assert events[-1].finished.status == pb.DELIBERATION_STATUS_SUCCEEDED
    samples = parse(await asyncio.to_thread(scrape, url))
    assert total(samples, "orchestrator_deliberations_total", role="DEV", status="succeeded") == 1
    assert total(samples, "orchestrator_agent_calls_total", phase="generate") == 3
    assert any(name == "orchestrator_queue_pending" for name, _, _ in samples)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: bytes = response.read()
        return body.decode()
