"""``orchestrator serve`` fronts and ``orchestrator worker`` processes over one nats-server
of the test's own and one PostgreSQL schema of the test's own, for the queue's process tests
(and the benchmark).

Their agents are the ``slow`` backend of ``plugin_path/queue_test_plugin.py``, installed as
an entry-point plugin by a ``.dist-info`` directory on the processes' ``PYTHONPATH``. Nothing
here imports pytest: ``bench/queue.py`` uses it too.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from nats_support import NatsServer
from plugin_install import installed_plugins

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import Task
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.records.model import DeliberationRecord
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import Settings
from orchestrator_grpc.client import OrchestratorClient

PLUGIN_NAME = "queue-test"
POSTGRES_URL = os.environ.get("ORCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVING = "orchestrator serving on "
WORKING = "orchestrator worker running"
START_SECONDS = 60.0
"""Bound of a process's start, only against a hang."""
FINISH_SECONDS = 120.0
"""Bound of a whole batch of deliberations, only against a hang."""


def orchestrator_command() -> str:
    """The installed ``orchestrator`` command, this interpreter's own first (no pytest here:
    the benchmark imports this module too)."""
    found = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or shutil.which("orchestrator")
    if found is None:
        raise RuntimeError("the orchestrator command is not installed (pip install -e packages/orchestrator-grpc)")
    return found


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose tables live in a schema of the caller's own, dropped after."""
    schema = f"orch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def environment(directory: Path, nats_url: str, database_url: str, **settings: str) -> dict[str, str]:
    """The processes' environment: the test plugin installed, the DEV council of 3 slow agents."""
    env = installed_plugins(directory / "site", "queue-test-plugin", {PLUGIN_NAME: "queue_test_plugin"})
    env.update(
        ORCH_PLUGINS_ENABLED=PLUGIN_NAME,
        ORCH_COUNCILS__DEV__BACKEND="slow",
        ORCH_COUNCILS__DEV__AGENTS="3",
        ORCH_NATS_URL=nats_url,
        ORCH_DATABASE_URL=database_url,
        ORCH_HOST="127.0.0.1",
        ORCH_PORT="0",
        ORCH_GRACE_PERIOD_SECONDS="5",
        ORCH_LOOP_STALL_SECONDS="0",
    )
    env.update(settings)
    return env


class Process:
    """One ``orchestrator serve`` or ``orchestrator worker``, started and ready."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command = command
        self.log = log
        with log.open("a") as stderr:
            self.process = subprocess.Popen(
                [orchestrator_command(), command], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        self.pid = self.process.pid
        line = self._first_line()
        ready = SERVING if command == "serve" else WORKING
        if not line.startswith(ready):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"orchestrator {command} did not start ({line!r}); its log:\n{log.read_text()}")
        self.address = line.removeprefix(SERVING).strip() if command == "serve" else ""

    def next_line(self) -> str:
        """The next line it prints ("" if none comes within START_SECONDS)."""
        return self._first_line()

    def _first_line(self) -> str:
        """Read in a thread: a buffered reader and a selector on its descriptor do not mix."""
        assert self.process.stdout is not None
        stdout = self.process.stdout
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            return lines.get(timeout=START_SECONDS)
        except queue.Empty:
            return ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, wait_seconds: float = START_SECONDS) -> int:
        """SIGTERM, and its exit status."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=wait_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


class Cluster:
    """The processes a test started, all killed at its end."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        self.directory = directory
        self.env = env
        self.processes: list[Process] = []

    def start(self, command: str, **settings: str) -> Process:
        log = self.directory / f"{command}-{len(self.processes)}.log"
        process = Process(command, {**self.env, **settings}, log)
        self.processes.append(process)
        return process

    def front(self, **settings: str) -> Process:
        """A pure front: accepts, streams and answers; runs nothing (ORCH_QUEUE_WORKERS=0)."""
        return self.start("serve", ORCH_QUEUE_WORKERS="0", **settings)

    def worker(self, **settings: str) -> Process:
        return self.start("worker", **settings)

    def stop_all(self) -> None:
        for process in self.processes:
            process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.command} {p.pid} ({p.log.name}):\n{p.log.read_text()[-4000:]}" for p in self.processes
        )


class RecordReader:
    """Reads records straight from the shared database (the store the processes write)."""

    def __init__(self, database_url: str) -> None:
        self._store: DeliberationStore = store_from_settings(Settings(database_url=database_url))  # type: ignore[arg-type]
        self._open = False

    async def get(self, deliberation_id: str) -> DeliberationRecord:
        if not self._open:
            await self._store.open()
            self._open = True
        record = await self._store.get(deliberation_id)
        assert record is not None, deliberation_id
        return record

    async def close(self) -> None:
        if self._open:
            await self._store.close()


def cluster_for(tmp_path: Path, nats: NatsServer, database_url: str, call_log: Path, **settings: str) -> Cluster:
    env = environment(
        tmp_path, nats.url, database_url, QUEUE_TEST_CALL_LOG=str(call_log), QUEUE_TEST_BURN_SECONDS="0.01",
        **settings,
    )
    return Cluster(tmp_path, env)


def task(key: str, text: str = "write a function that adds two numbers") -> Task:
    return Task(role="DEV", description=f"{key} {text}")


async def watch_to_the_end(front: Process, deliberation_id: str, after: int = 0) -> list[pb.DeliberationEvent]:
    async with OrchestratorClient(front.address) as client:
        events = []
        async with asyncio.timeout(FINISH_SECONDS):
            async for event in client.watch_messages(deliberation_id, after_sequence=after):
                events.append(event)
        return events


def logged_calls(call_log: Path) -> list[tuple[str, str, str, int, int]]:
    """(task key, agent, phase, round, pid) per line of the call log."""
    lines = call_log.read_text().splitlines() if call_log.exists() else []
    calls = []
    for line in lines:
        key, agent, phase, round_number, pid = line.split("\t")
        calls.append((key, agent, phase, int(round_number), int(pid)))
    return calls
