"""What the standard health service reports, and keeping it current.

Three kinds of name are published:

- ``""`` (the whole server) and ``orchestrator.v1.OrchestratorService``: the server's own
  readiness. SERVING once it listens with at least one council able to run, NOT_SERVING
  from the first moment of a shutdown. A model server being down does not change them: a
  replica restarted or taken out of a load balancer for it would not bring the model server
  back, and the other councils (and records) would be lost with it.
- ``orchestrator.v1.OrchestratorService/<ROLE>``, one per council: NOT_SERVING while that
  council cannot run (e.g. its backend is not installed) or while its endpoint's circuit
  breaker is open, SERVING otherwise (a half-open circuit lets a trial call through).
  Refreshed every ``ORCH_HEALTH_REFRESH_SECONDS``.

On SIGTERM every name turns NOT_SERVING at once and stays so (:meth:`HealthPublisher.drain`);
Watch streams are sent NOT_SERVING then, and end when the server stops listening
(:meth:`HealthPublisher.end_watches`), so a watcher does not hold the shutdown for the
whole grace period.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from orchestrator_core.breaker import CircuitState
from orchestrator_core.council import Council
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.tasks import cancel_and_wait
from orchestrator_grpc.service import SERVICE_NAME

log = logging.getLogger(__name__)

OVERALL_HEALTH = ""
"""The health-check service name that stands for the whole server."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def council_service_name(role: str) -> str:
    """The health-check name of one council, e.g. ``orchestrator.v1.OrchestratorService/DEV``."""
    return f"{SERVICE_NAME}/{role}"


def council_serving(council: Council) -> bool:
    return council.ready and council.circuit is not CircuitState.OPEN


class DrainingHealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """grpc's asyncio health servicer whose Watch streams can be ended from the server's side."""

    def __init__(self) -> None:
        super().__init__()
        self._ending = asyncio.Event()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """Stream the status of ``request.service`` as it changes, until :meth:`end_watches`.

        A stream ended that way ends with the status at that moment (NOT_SERVING, once the
        server drains), sent again if the watcher already had it: the status changed just
        before the end may not have been written yet when the watch was stopped."""
        if not self._ending.is_set():
            watch = asyncio.ensure_future(super().Watch(request, context))
            ending = asyncio.ensure_future(self._ending.wait())
            try:
                await asyncio.wait((watch, ending), return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait([watch, ending])  # raises what the watch itself raised
        status = self._server_status.get(request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
        await context.write(health_pb2.HealthCheckResponse(status=status))

    def end_watches(self) -> None:
        """End every Watch stream (status OK), now and as soon as any new one starts."""
        self._ending.set()


class HealthPublisher:
    """Sets the health statuses of the server and of each council, and keeps them current."""

    def __init__(self, servicer: health_aio.HealthServicer, orchestrator: Orchestrator, interval: float) -> None:
        self.servicer = servicer
        self._orchestrator = orchestrator
        self._interval = interval
        self._published: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None

    async def publish(self) -> None:
        """Set every status now: the server's readiness, then each council's."""
        ready = self._orchestrator.ready
        for name in (OVERALL_HEALTH, SERVICE_NAME):
            await self._set(name, ready)
        await self.refresh()

    async def refresh(self) -> None:
        """Set each council's status again, where it changed."""
        for role, council in self._orchestrator.councils.items():
            await self._set(council_service_name(role), council_serving(council))

    def published(self, name: str) -> bool | None:
        """Whether ``name`` was last published SERVING; None if it never was published."""
        return self._published.get(name)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def drain(self) -> None:
        """Every name NOT_SERVING, for good: watchers are told at once, refreshing stops."""
        await self.stop()
        await self.servicer.enter_graceful_shutdown()
        self._published = {name: False for name in self._published}

    def end_watches(self) -> None:
        """End the Watch streams, if the servicer can (see :class:`DrainingHealthServicer`)."""
        if isinstance(self.servicer, DrainingHealthServicer):
            self.servicer.end_watches()

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop the refreshing for good
                log.exception("could not refresh the councils' health")

    async def _set(self, name: str, serving: bool) -> None:
        previous = self._published.get(name)
        if previous == serving:
            return
        self._published[name] = serving
        if previous is not None:
            log.info("health of %s is now %s", name, "SERVING" if serving else "NOT_SERVING")
        await self.servicer.set(name, SERVING if serving else NOT_SERVING)
