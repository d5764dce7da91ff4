"""A nats-server of a test's own (JetStream on, its store in a directory of the test's, a free
port), which the test can kill and start again on the same store and port.

Never the shared server on 4222: a test that kills its server must kill only its own. The
benchmarks use it too (``bench/queue.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
READY_SECONDS = 30.0
"""Bound of a start, only against a hang."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process at a time, on ``port`` with its JetStream store in ``store``."""

    def __init__(self, store: Path, port: int | None = None, *options: str) -> None:
        self.store = store
        self.port = port if port is not None else free_port()
        self.options = options
        """More command-line options (e.g. ``--user``, ``--pass``)."""
        self.log = store.parent / f"nats-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers (JetStream ready: its log says the server is ready)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the nats-server is already running")
        self.store.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            start = log.tell()
            self.process = subprocess.Popen(
                [NATS_SERVER, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port), *self.options],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited {self.process.returncode}:\n{self._log_since(start)}")
            if "Server is ready" in self._log_since(start) and self._answers():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"nats-server did not become ready within {READY_SECONDS:g}s:\n{self._log_since(start)}")

    def kill(self) -> None:
        """SIGKILL: what it has not written to its store is lost, as in a crash."""
        self._stop(signal.SIGKILL)

    def stop(self) -> None:
        self._stop(signal.SIGTERM)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Kill it, stay down ``down_seconds``, and start it again on the same store and port."""
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def _stop(self, signum: int) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signum)
        try:
            process.wait(timeout=READY_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                return connection.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def _log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


@contextmanager
def nats_server(directory: Path) -> Iterator[NatsServer]:
    """A started server for the block, its store under ``directory``; killed after it."""
    server = NatsServer(directory / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.kill()
