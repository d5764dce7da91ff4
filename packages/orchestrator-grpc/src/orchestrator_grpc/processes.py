"""``orchestrator serve --processes N``: N server processes on one port, one event loop each.

A Python process runs its event loop on one core; gRPC's pattern for using more of them is
several processes listening on the same port with ``SO_REUSEPORT``, the kernel spreading
connections across them. The parent here starts N children (``spawn``: a fresh interpreter,
no event loop or gRPC state inherited), each a whole server as ``serve`` runs one: its
plugins, orchestrator, health, drain, queue workers and statistics. They share the record
store: PostgreSQL, or the SQLite file in WAL mode with a lease per process (see
:mod:`orchestrator_core.records.sqlite`).

- The parent prints ``orchestrator serving on`` once, when every child listens; with
  metrics, one ``orchestrator metrics on`` line per child: child ``i`` serves them on
  ``ORCH_METRICS_PORT + i`` (or a free port of its own with 0).
- SIGTERM or SIGINT to the parent reaches every child; each drains as ``serve`` does
  (NOT_SERVING, the drain delay, the grace period). The parent exits 0 when all did.
- A child that dies unasked takes the parent down: the others are stopped (drained) and the
  parent exits 1, for the supervisor (systemd, Kubernetes) to restart the whole server, as it
  would a one-process server that died. Nothing is restarted behind its back.
- GetStatus, health and metrics are per process: a call is answered by the child its
  connection landed on, with that child's own statistics.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import closing, suppress
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from orchestrator_core.settings import Settings
from orchestrator_grpc.server import AddressUnavailable, RunningServer, dial_address

__all__ = ["serve_processes"]

log = logging.getLogger(__name__)

FAILURE = 1


def serve_processes(settings: Settings) -> int:
    """Run ``settings.processes`` server processes until SIGTERM or SIGINT; the exit status."""
    with closing(_reserve_port(settings.host, settings.port)) as reserved:
        port = reserved.getsockname()[1]
        settings = settings.model_copy(update={"port": port})
        context = multiprocessing.get_context("spawn")
        children: list[BaseProcess] = []
        stopping = False

        def stop(signum: int, _: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            _signal_all(children)

        previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            readers: list[Connection] = []
            for index in range(settings.processes):
                reader, writer = context.Pipe(duplex=False)
                child = context.Process(
                    target=_child, args=(settings, index, writer), name=f"orchestrator-serve-{index}"
                )
                child.start()
                writer.close()
                children.append(child)
                readers.append(reader)
            ready = _await_ready(children, readers)
            if ready is None:
                stopping = True
                _signal_all(children)
            else:
                print(f"orchestrator serving on {dial_address(settings.host, port)}", flush=True)
                for url in ready:
                    if url:
                        print(f"orchestrator metrics on {url}", flush=True)
                log.info("serving from %d processes: %s", len(children),
                         ", ".join(str(c.pid) for c in children))
            return _supervise(children, lambda: stopping)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _await_ready(children: list[BaseProcess], readers: list[Connection]) -> list[str] | None:
    """Each child's metrics URL ("" for none) once all listen; None when one exited first."""
    urls: dict[int, str] = {}
    waiting = dict(enumerate(readers))
    while waiting:
        sentinels = {child.sentinel: index for index, child in enumerate(children)}
        for ready in wait([*waiting.values(), *sentinels]):
            if isinstance(ready, Connection):
                index = next(i for i, r in waiting.items() if r is ready)
                try:
                    urls[index] = ready.recv()
                except EOFError:  # the child exited before it listened
                    return None
                del waiting[index]
            else:
                return None  # a child exited before all listened
    return [urls[index] for index in range(len(readers))]


def _supervise(children: list[BaseProcess], stopping: Callable[[], bool]) -> int:
    """Wait for the children; one exiting unasked stops the others. The exit status: 0 when
    every child stopped cleanly on a signal, else the first failure's (at least 1)."""
    status = 0
    running = list(children)
    while running:
        wait([child.sentinel for child in running])
        for child in [c for c in running if not c.is_alive()]:
            child.join()
            running.remove(child)
            code = child.exitcode or 0
            if not stopping():
                log.error("server process %s (pid %s) exited with %s; stopping the others",
                          child.name, child.pid, code)
                status = status or (code if code > 0 else FAILURE)
            elif code != 0:
                status = status or (code if code > 0 else FAILURE)
        if status and running:
            _signal_all(running)
    return status


def _signal_all(children: list[BaseProcess]) -> None:
    for child in children:
        if child.pid is not None and child.is_alive():
            with suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)


def _reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound with ``SO_REUSEPORT`` to host:port (never listening): holds the port the
    children share, the one picked when ``port`` is 0."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((host.strip("[]") or "0.0.0.0", port))
    except OSError as exc:
        reserved.close()
        reason = (exc.strerror or str(exc)).lower()
        raise AddressUnavailable(
            f"cannot listen on {host}:{port}: {reason} (ORCH_HOST, ORCH_PORT, or serve --host/--port)"
        ) from None
    return reserved


def _child(settings: Settings, index: int, ready: Connection) -> None:
    """One server process: serve as ``serve`` does, telling the parent once it listens."""
    from orchestrator_grpc.cli.commands import run_server
    from orchestrator_grpc.observability.log_format import configure_logging

    if settings.metrics_port:
        settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
    configure_logging(settings, sys.stderr)

    def announce(server: RunningServer) -> None:
        metrics = server.observability.metrics
        ready.send(metrics.url if metrics is not None else "")
        ready.close()

    sys.exit(run_server(settings, announce))
