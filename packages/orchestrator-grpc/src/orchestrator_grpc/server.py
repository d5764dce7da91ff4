"""The composition root: settings and plugins -> orchestrator -> a grpc.aio server.

Beside the OrchestratorService the server runs standard gRPC health checking (the server,
the service and each council: :mod:`orchestrator_grpc.health`) and server reflection, so
``grpcurl`` and ``grpc-health-probe`` work against it unchanged. The settings add TLS or
mutual TLS (:mod:`orchestrator_grpc.tls`), bearer tokens (:mod:`orchestrator_grpc.auth`)
and the largest message size.

Tests and embedders use :func:`running_server`::

    async with running_server(settings, plugins=host) as server:
        channel = grpc.aio.insecure_channel(server.address)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.orchestrator import CLOSE_WAIT_SECONDS, Orchestrator
from orchestrator_core.plugins import PluginHost, load_plugins
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.settings import Settings
from orchestrator_core.work_queue import WorkQueue
from orchestrator_grpc.auth import BearerAuth, configured_tokens
from orchestrator_grpc.health import OVERALL_HEALTH, DrainingHealthServicer, HealthPublisher
from orchestrator_grpc.interceptors import DecodeGuard, DrainGate, ServerInterceptor
from orchestrator_grpc.jetstream import queue_from_settings
from orchestrator_grpc.observability import Observability, observability_for
from orchestrator_grpc.service import SERVICE_NAME, OrchestratorServicer
from orchestrator_grpc.tls import server_credentials

__all__ = [
    "OVERALL_HEALTH", "AddressUnavailable", "Announce", "RunningServer", "running_server", "serve", "start_server",
]

log = logging.getLogger(__name__)

Announce = Callable[["RunningServer"], None]
"""Told once a server listens (``serve --processes``: each child tells its parent)."""

HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class AddressUnavailable(OSError):
    """The server cannot listen on its host:port (in use, or not an address of this machine)."""


class RunningServer:
    """A started server: its bound port, its parts, and a graceful shutdown."""

    def __init__(
        self,
        settings: Settings,
        server: grpc.aio.Server,
        port: int,
        orchestrator: Orchestrator,
        servicer: OrchestratorServicer,
        health: HealthPublisher,
        gate: DrainGate,
        observability: Observability,
    ) -> None:
        self.settings = settings
        self.server = server
        self.port = port
        self.orchestrator = orchestrator
        self.servicer = servicer
        self.health_publisher = health
        self.health: health_aio.HealthServicer = health.servicer
        self._gate = gate
        self.observability = observability
        self._stopped = False
        self._workers: asyncio.Task[None] | None = None

    def start_workers(self) -> None:
        """Run ORCH_QUEUE_WORKERS deliberations from the work queue at once, in this process,
        until shutdown (none with 0: a pure front, other processes run them)."""
        if self.settings.queue_workers > 0 and self._workers is None:
            self._workers = asyncio.create_task(
                self.orchestrator.consume(self.settings.queue_workers), name="queue-workers"
            )

    async def _stop_workers(self) -> None:
        """Stop taking deliberations from the queue; those running go on (the grace period)."""
        if self._workers is not None:
            self._workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._workers
            self._workers = None

    @property
    def address(self) -> str:
        """``host:port`` to dial; a wildcard host is dialled on the loopback address."""
        return dial_address(self.settings.host, self.port)
    async def shutdown(self, grace: float | None = None, drain_delay: float | None = None) -> None:
        """Health -> NOT_SERVING (every name, Watch streams told) and new calls -> UNAVAILABLE
        at once; keep the port open for ``drain_delay`` seconds (default: the settings'
        drain delay), so that probes and load balancers see it; then stop listening and let
        in-flight calls finish within ``grace`` seconds (default: the settings' grace period;
        calls still running then are cancelled), then close the core.
        """
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grace_period_seconds if grace is None else grace
        drain_delay = self.settings.drain_delay_seconds if drain_delay is None else drain_delay
        self._gate.closed = True
        self.servicer.draining = True
        await self._stop_workers()
        await self.health_publisher.drain()
        if drain_delay > 0:
            log.info("draining: health is NOT_SERVING and new calls are refused; the port closes in %gs",
                     drain_delay)
            await asyncio.sleep(drain_delay)
        log.info("shutting down; letting in-flight calls finish within %gs", grace)
        started = time.monotonic()
        stopping = asyncio.ensure_future(self.server.stop(grace))
        await asyncio.sleep(0)  # the stop closes the port before it first waits
        # Health watchers have been told; their streams would otherwise hold the stop for
        # the whole grace period.
        self.health_publisher.end_watches()
        await stopping
        # Queued runs of this process's workers get what is left of the grace period too;
        # those still running then hand their deliveries back.
        await self.orchestrator.close(max(grace - (time.monotonic() - started), CLOSE_WAIT_SECONDS))
        await self.observability.close()
        log.info("stopped")


async def start_orchestrator(
    settings: Settings, plugins: PluginHost, observability: Observability, queue: WorkQueue | None
) -> Orchestrator:
    """Start ``plugins``, then build and start the orchestrator over them (its records open).

    Plugins start before the councils are built: one that fails to start is withdrawn (or,
    strict, stops startup); the orchestrator's close runs their shutdown hooks, and a failed
    start runs them here."""
    try:
        await plugins.startup(settings.plugin_lifecycle_timeout_seconds)
    except BaseException:
        await plugins.shutdown()
        raise
    orchestrator = Orchestrator(settings, plugins, store_from_settings(settings), observability.telemetry, queue=queue)
    try:
        await orchestrator.start()
    except BaseException:
        await plugins.shutdown()
        raise
    return orchestrator


async def start_server(
    settings: Settings, plugins: PluginHost, observability: Observability | None = None
) -> RunningServer:
    """Build the orchestrator over ``plugins`` and start serving on the settings' host:port.

    ``observability`` replaces what the settings and the ``OTEL_*`` variables would compose
    (e.g. tracing with an exporter of one's own); the server starts and closes it."""
    # Secrets and certificates are read before anything starts: a bad file fails startup.
    credentials = await asyncio.to_thread(server_credentials, settings)
    tokens = await asyncio.to_thread(configured_tokens, settings)
    if observability is None:
        observability = observability_for(settings)
    gate = DrainGate()
    interceptors: list[ServerInterceptor] = [*observability.interceptors, gate]
    if tokens:
        interceptors.append(BearerAuth(tokens))
    interceptors.append(DecodeGuard())
    orchestrator = await start_orchestrator(settings, plugins, observability, queue_from_settings(settings))
    try:
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                # serve --processes: the processes listen on one port, the kernel spreads
                # connections across them (gRPC's pattern for multi-core Python servers).
                *([("grpc.so_reuseport", 1)] if settings.processes > 1 else []),
                *_pending_calls(settings),
            ],
        )
        servicer = OrchestratorServicer(orchestrator, settings.max_message_bytes)
        pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health = HealthPublisher(DrainingHealthServicer(), orchestrator, settings.health_refresh_seconds)
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = _bind(server, settings, credentials)
        await observability.start(orchestrator)
        await health.publish()
        await server.start()
        health.start()
    except BaseException:
        await orchestrator.close()
        await observability.close()
        raise
    if not orchestrator.ready:
        log.warning("no council is ready; health is NOT_SERVING: %s", _council_problems(orchestrator))
    log.info(
        "serving %s on %s, bound to %s (%s%s)", SERVICE_NAME, dial_address(settings.host, port),
        f"{_bracketed(settings.host)}:{port}",
        "plaintext" if credentials is None else "TLS" if settings.tls_client_ca_file is None else "mutual TLS",
        f", {len(tokens)} bearer token(s)" if tokens else "",
    )
    running = RunningServer(settings, server, port, orchestrator, servicer, health, gate, observability)
    running.start_workers()
    return running


@asynccontextmanager
async def running_server(
    settings: Settings, plugins: PluginHost | None = None, observability: Observability | None = None
) -> AsyncIterator[RunningServer]:
    """A started server for the duration of the block, shut down gracefully after it.

    Args:
      settings: host, port (0 picks a free one), database path, councils, ...
      plugins: a host with its plugins registered and collected; None loads the installed
        plugins as the settings say.
      observability: the metrics, traces and logs to keep; None composes them from the
        settings and the environment (see :func:`start_server`).
    """
    host = plugins if plugins is not None else load_plugins(settings)
    server = await start_server(settings, host, observability)
    try:
        yield server
    finally:
        await server.shutdown()


def announce_serving(server: RunningServer) -> None:
    """Print where the server listens: a line that scripts (and tests using port 0) read the
    address to dial from; the log line of the start names the address bound as well."""
    print(f"orchestrator serving on {server.address}", flush=True)
    if server.observability.metrics is not None:
        print(f"orchestrator metrics on {server.observability.metrics.url}", flush=True)


async def serve(settings: Settings, plugins: PluginHost, announce: Announce | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully; ``announce`` is told once
    the server listens (default: :func:`announce_serving`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with running_server(settings, plugins) as server:
        collect_for_serving()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        (announce or announce_serving)(server)
        try:
            await stop.wait()
            log.info("signal received")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


ALLOCATIONS_PER_COLLECTION = 50_000
"""Allocations (net of frees) between two collections of the youngest generation; 700 by default."""


def collect_for_serving() -> None:
    """Tune Python's cyclic garbage collector for a serving process, once it has started.

    What startup made (modules, plugins, schemas, gRPC) is frozen out of every collection,
    and the youngest generation is collected every 50,000 allocations instead of 700 (the
    middle one every 20 of those, instead of 10; the oldest every 10 of those, as by default,
    so cyclic garbage that outlived a deliberation, a timeout's traceback and its frames, is
    not kept for long). A deliberation allocates
    thousands of objects, so with the defaults a busy server collected many times per
    deliberation, each collection walking every object of the deliberations in flight: with
    1,200 of them at once the collector was a third of the server's CPU (1.64 to 1.75 ms per
    deliberation; 1.09 to 1.10 ms tuned). Nothing is kept longer than the next collection:
    what is garbage without a cycle is freed at once, as always. Only ``serve`` does this;
    an embedder's process keeps its own settings."""
    gc.collect()  # startup's own garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(ALLOCATIONS_PER_COLLECTION, 20, 10)


PENDING_CALLS_HEADROOM = 1000
"""Calls gRPC may hold, beyond the deliberations admitted at once, before the loop takes them in."""


def _pending_calls(settings: Settings) -> list[tuple[str, int]]:
    """gRPC's queue of calls that arrived before the event loop asked for them, sized to the
    deliberations the server admits at once. Past its default soft limit (1,000) gRPC cancels
    queued calls at random (CANCELLED, no message, never seen by a handler): a burst of 2,400
    Deliberate calls at once lost about 15% of them so. Sized here, a burst is taken in and
    what is beyond ORCH_MAX_CONCURRENT_DELIBERATIONS gets the orchestrator's own answer
    (RESOURCE_EXHAUSTED, saying so)."""
    soft = max(PENDING_CALLS_HEADROOM, settings.max_concurrent_deliberations + PENDING_CALLS_HEADROOM)
    return [("grpc.server.max_pending_requests", soft), ("grpc.server.max_pending_requests_hard_limit", 3 * soft)]


def _bind(server: grpc.aio.Server, settings: Settings, credentials: grpc.ServerCredentials | None) -> int:
    """Listen on the settings' host:port; the port bound (the one picked, for port 0)."""
    address = f"{_bracketed(settings.host)}:{settings.port}"
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio: "Failed to bind to address ..."
        port = 0
    if port == 0:
        raise AddressUnavailable(
            f"cannot listen on {address}: {_why_unbindable(settings.host, settings.port)} "
            "(ORCH_HOST, ORCH_PORT, or serve --host/--port)"
        )
    return port


def _why_unbindable(host: str, port: int) -> str:
    """The operating system's reason, found by binding the address once more (gRPC only logs it)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"the host does not resolve ({exc.strerror})"
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            try:
                probe.bind(address)
            except OSError as exc:
                return (exc.strerror or str(exc)).lower()
    return "gRPC could not bind it"


def _council_problems(orchestrator: Orchestrator) -> str:
    return "; ".join(c.info().detail for c in orchestrator.councils.values()) or "no councils configured"


def dial_address(host: str, port: int) -> str:
    """Where a client on this machine dials a server bound to ``host``: a wildcard host
    (every interface) is dialled on the loopback address."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
