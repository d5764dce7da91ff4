"""The composition root: settings and plugins -> orchestrator -> a grpc.aio server.

Beside the OrchestratorService the server runs standard gRPC health checking (overall
and per service) and server reflection, so ``grpcurl`` and ``grpc-health-probe`` work
against it unchanged.

Tests and embedders use :func:`running_server`::

    async with running_server(settings, plugins=host) as server:
        channel = grpc.aio.insecure_channel(server.address)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost, load_plugins
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.settings import Settings
from orchestrator_grpc.service import SERVICE_NAME, OrchestratorServicer

log = logging.getLogger(__name__)

OVERALL_HEALTH = ""
"""The health-check service name that stands for the whole server."""
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class RunningServer:
    """A started server: its bound port, its parts, and a graceful shutdown."""

    def __init__(
        self,
        settings: Settings,
        server: grpc.aio.Server,
        port: int,
        orchestrator: Orchestrator,
        servicer: OrchestratorServicer,
        health_servicer: health_aio.HealthServicer,
    ) -> None:
        self.settings = settings
        self.server = server
        self.port = port
        self.orchestrator = orchestrator
        self.servicer = servicer
        self.health = health_servicer
        self._stopped = False

    @property
    def address(self) -> str:
        """``host:port`` to dial; a wildcard host is dialled on the loopback address."""
        host = self.settings.host
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"
        return f"{_bracketed(host)}:{self.port}"

    async def shutdown(self, grace: float | None = None) -> None:
        """Health -> NOT_SERVING at once, stop accepting calls, let in-flight calls finish
        within ``grace`` seconds (default: the settings' grace period), then close the core.
        """
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grace_period_seconds if grace is None else grace
        self.servicer.draining = True
        await self.health.enter_graceful_shutdown()
        log.info("shutting down; letting in-flight calls finish within %gs", grace)
        await self.server.stop(grace)
        await self.orchestrator.close()
        log.info("stopped")


async def start_server(settings: Settings, plugins: PluginHost) -> RunningServer:
    """Build the orchestrator over ``plugins`` and start serving on the settings' host:port."""
    orchestrator = Orchestrator(settings, plugins, store_from_settings(settings))
    await orchestrator.start()
    try:
        server = grpc.aio.server()
        servicer = OrchestratorServicer(orchestrator)
        pb_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health_servicer = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = server.add_insecure_port(f"{_bracketed(settings.host)}:{settings.port}")
        if port == 0:
            raise OSError(f"could not bind {settings.host}:{settings.port}")
        serving = (
            health_pb2.HealthCheckResponse.SERVING
            if orchestrator.ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (OVERALL_HEALTH, SERVICE_NAME):
            await health_servicer.set(name, serving)
        await server.start()
    except BaseException:
        await orchestrator.close()
        raise
    if not orchestrator.ready:
        log.warning("no council is ready; health is NOT_SERVING: %s", _council_problems(orchestrator))
    log.info("serving %s on %s:%d", SERVICE_NAME, settings.host, port)
    return RunningServer(settings, server, port, orchestrator, servicer, health_servicer)


@asynccontextmanager
async def running_server(
    settings: Settings, plugins: PluginHost | None = None
) -> AsyncIterator[RunningServer]:
    """A started server for the duration of the block, shut down gracefully after it.

    Args:
      settings: host, port (0 picks a free one), database path, councils, ...
      plugins: a host with its plugins registered and collected; None loads the installed
        plugins as the settings say.
    """
    host = plugins if plugins is not None else load_plugins(settings)
    server = await start_server(settings, host)
    try:
        yield server
    finally:
        await server.shutdown()


async def serve(settings: Settings, plugins: PluginHost) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with running_server(settings, plugins) as server:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # A line that scripts (and tests using port 0) can read the bound address from.
        print(f"orchestrator serving on {server.address}", flush=True)
        try:
            await stop.wait()
            log.info("signal received")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


def _council_problems(orchestrator: Orchestrator) -> str:
    return "; ".join(c.info().detail for c in orchestrator.councils.values()) or "no councils configured"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
