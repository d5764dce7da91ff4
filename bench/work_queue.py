"""Queued deliberations through NATS JetStream: throughput of 1, 2 and 3 ``orchestrator worker``
processes behind one front, on an I/O-bound load (agents that wait) and a CPU-bound one (a
check that burns CPU), and the latency from Submit to the first watched event against a
direct call on a server without a queue.

Run alone: ``python bench/work_queue.py`` (prints the section); ``bench/run.py`` includes it.
Needs ``nats-server`` and PostgreSQL on 127.0.0.1:5432 (database ``test``), like the tests:
it starts its own nats-server and uses a schema of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TESTS = HERE.parent / "packages" / "orchestrator-grpc" / "tests"
sys.path.insert(0, str(TESTS))

from nats_support import nats_server  # noqa: E402
from queue_processes import Cluster, Process, RecordReader, environment, postgres_schema  # noqa: E402

from orchestrator_core.models import Task  # noqa: E402
from orchestrator_grpc.client import OrchestratorClient  # noqa: E402

WORKER_COUNTS = (1, 2, 3)
IO_DELIBERATIONS = 24
IO_CALL_SECONDS = 0.2
IO_CONCURRENCY = 4
"""Deliberations each worker runs at once on the I/O-bound load: the bound that more workers lift."""
CPU_DELIBERATIONS = 12
CPU_BURN_SECONDS = 0.25
"""CPU time the check burns on each proposal (3 proposals a deliberation), in a thread: one
process's Python uses one core at a time, so a worker is one core at most."""
LATENCY_RUNS = 15


def task(n: int) -> Task:
    return Task(role="DEV", description=f"b{n:03d} write a function that adds two numbers")


async def _until_final(reader: RecordReader, ids: list[str]) -> None:
    async with asyncio.timeout(600):
        pending = list(ids)
        while pending:
            pending = [i for i in pending if not (await reader.get(i)).status.finished]
            if pending:
                await asyncio.sleep(0.02)


async def _throughput(cluster: Cluster, front: Process, reader: RecordReader, workers: int, count: int,
                      offset: int, **settings: str) -> float:
    """Deliberations per second: ``count`` submitted at once, until the last is final."""
    started_workers = [cluster.worker(**settings) for _ in range(workers)]
    try:
        async with OrchestratorClient(front.address) as client:
            start = time.perf_counter()
            ids = list(await asyncio.gather(*(client.submit(task(offset + n)) for n in range(count))))
            await _until_final(reader, [i.deliberation_id for i in ids])
            wall = time.perf_counter() - start
        for record_id in ids:
            record = await reader.get(record_id.deliberation_id)
            if record.status.value != "succeeded":
                raise RuntimeError(f"{record_id.deliberation_id} {record.status}: {record.error}")
        return count / wall
    finally:
        for worker in started_workers:
            worker.terminate()


async def _first_event_seconds(front: Process, direct: Process) -> dict[str, float]:
    """Median Submit → first watched event (queue), and StreamDeliberation → first event and a
    whole Deliberate on a server that runs it itself (no queue), with instant agents."""
    queued: list[float] = []
    streamed: list[float] = []
    whole: list[float] = []
    async with OrchestratorClient(front.address) as via_queue, OrchestratorClient(direct.address) as local:
        for n in range(LATENCY_RUNS):
            start = time.perf_counter()
            submitted = await via_queue.submit(task(900 + n))
            async with contextlib.aclosing(via_queue.watch_messages(submitted.deliberation_id)) as events:
                await anext(events)
                queued.append(time.perf_counter() - start)
            start = time.perf_counter()
            async with contextlib.aclosing(local.stream_deliberation_messages(task(900 + n))) as events:
                await anext(events)
                streamed.append(time.perf_counter() - start)
            start = time.perf_counter()
            await local.deliberate(task(900 + n))
            whole.append(time.perf_counter() - start)
    return {
        "queued_first_event": statistics.median(queued),
        "direct_first_event": statistics.median(streamed),
        "direct_deliberate": statistics.median(whole),
    }


async def _measure(directory: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {"io": {}, "cpu": {}}
    with nats_server(directory) as nats, postgres_schema() as database_url:
        env = environment(directory, nats.url, database_url, ORCH_GRACE_PERIOD_SECONDS="2")
        cluster = Cluster(directory, env)
        reader = RecordReader(database_url)
        try:
            front = cluster.front()
            io = {"QUEUE_TEST_CALL_SECONDS": str(IO_CALL_SECONDS), "QUEUE_TEST_BURN_SECONDS": "0",
                  "ORCH_QUEUE_WORKERS": str(IO_CONCURRENCY)}
            cpu = {"QUEUE_TEST_CALL_SECONDS": "0", "QUEUE_TEST_BURN_SECONDS": str(CPU_BURN_SECONDS),
                   "ORCH_QUEUE_WORKERS": "3"}
            offset = 0
            for workers in WORKER_COUNTS:
                figures["io"][workers] = await _throughput(cluster, front, reader, workers, IO_DELIBERATIONS,
                                                           offset, **io)
                offset += IO_DELIBERATIONS
                figures["cpu"][workers] = await _throughput(cluster, front, reader, workers, CPU_DELIBERATIONS,
                                                            offset, **cpu)
                offset += CPU_DELIBERATIONS
            instant = {"QUEUE_TEST_CALL_SECONDS": "0", "QUEUE_TEST_BURN_SECONDS": "0"}
            latency_worker = cluster.worker(**instant)
            direct_env = {k: v for k, v in {**env, **instant}.items() if k != "ORCH_NATS_URL"}
            direct_env.update(ORCH_DATABASE_URL=f"sqlite:///{directory / 'direct.sqlite3'}", ORCH_QUEUE_WORKERS="1")
            direct = Process("serve", direct_env, directory / "direct.log")
            cluster.processes.append(direct)
            figures["latency"] = await _first_event_seconds(front, direct)
            latency_worker.terminate()
        finally:
            cluster.stop_all()
            await reader.close()
    figures["cores"] = os.cpu_count() or 1
    return figures


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as directory:
        return asyncio.run(_measure(Path(directory)))


def markdown(f: dict[str, Any]) -> list[str]:
    io, cpu, latency, cores = f["io"], f["cpu"], f["latency"], f["cores"]
    io_ideal = IO_CONCURRENCY / (3 * IO_CALL_SECONDS)
    lines = [
        "## Work queue",
        "",
        "Queued deliberations through NATS JetStream (a nats-server of the benchmark's own, records in",
        "PostgreSQL): one `orchestrator serve` front (`ORCH_QUEUE_WORKERS=0`) and 1, 2 or 3",
        "`orchestrator worker` processes; all deliberations submitted at once, timed until the last",
        "record is final. DEV council of 3 agents, 1 round (9 calls in 3 sequential phases).",
        "",
        f"- I/O-bound: every agent call waits {IO_CALL_SECONDS * 1000:.0f} ms, no CPU work; each worker runs",
        f"  {IO_CONCURRENCY} at once; {IO_DELIBERATIONS} deliberations. One worker's ideal is {IO_CONCURRENCY} per",
        f"  {3 * IO_CALL_SECONDS:.1f} s critical path = {io_ideal:.1f} /s.",
        f"- CPU-bound: instant agents, a check burning {CPU_BURN_SECONDS * 1000:.0f} ms of CPU on each of the 3",
        f"  proposals ({3 * CPU_BURN_SECONDS:.2f} s a deliberation); {CPU_DELIBERATIONS} deliberations. Python runs",
        "  one thread of a process at a time, so a worker uses one core at most.",
        "",
        "| workers | I/O-bound | over 1 worker | CPU-bound | over 1 worker |",
        "| --- | --- | --- | --- | --- |",
    ]
    for workers in WORKER_COUNTS:
        lines.append(
            f"| {workers} | {io[workers]:.2f} /s | {io[workers] / io[1]:.2f}x | {cpu[workers]:.2f} /s | "
            f"{cpu[workers] / cpu[1]:.2f}x |"
        )
    cpu_ceiling = cores / (3 * CPU_BURN_SECONDS)
    lines += [
        "",
        f"On {cores} cores the CPU-bound ceiling is {cores} cores' worth of checks: {cores} / "
        f"{3 * CPU_BURN_SECONDS:.2f} s = {cpu_ceiling:.2f} /s,",
        f"{min(cores, 3):d}x one worker at best; measured best {max(cpu.values()):.2f} /s "
        f"({max(cpu.values()) / cpu_ceiling:.0%} of it). A third worker adds no core; the front, the",
        "nats-server, PostgreSQL and the bookkeeping share the same ones.",
        "The I/O-bound load scales with the workers' combined concurrency until the front and the",
        "record writes (every completed call is stored as it ends) become the bound.",
        "",
        f"Latency, median of {LATENCY_RUNS}, instant agents: Submit → first event of WatchDeliberation through",
        "the queue, against the same request on a server with no queue (SQLite, runs it itself).",
        "",
        "| path | time | over direct first event |",
        "| --- | --- | --- |",
        f"| Submit → first watched event (queue, worker, PostgreSQL) | {latency['queued_first_event'] * 1000:.1f} ms | "
        f"{latency['queued_first_event'] / latency['direct_first_event']:.1f}x |",
        f"| StreamDeliberation → first event (direct) | {latency['direct_first_event'] * 1000:.1f} ms | 1.0x |",
        f"| whole Deliberate (direct) | {latency['direct_deliberate'] * 1000:.1f} ms | "
        f"{latency['direct_deliberate'] / latency['direct_first_event']:.1f}x |",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(markdown(run())))
