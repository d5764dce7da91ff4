"""``orchestrator worker``: runs queued deliberations from NATS JetStream, serves no port.

The same settings and plugins as ``serve``, the same record store (shared with the fronts
that accept the deliberations), and ``ORCH_QUEUE_WORKERS`` deliberations at once (at least
one: a worker that runs none would be pointless). Metrics, when ``ORCH_METRICS_PORT`` is
set, and logs as ``serve`` has them.

On SIGTERM or SIGINT it stops pulling, lets the deliberations it holds finish within the
grace period (``ORCH_GRACE_PERIOD_SECONDS``), hands back those still running then (each
stores its progress first, so the next worker resumes it) and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_grpc.jetstream import NATS_URL_ENV, queue_from_settings
from orchestrator_grpc.observability import Observability, observability_for
from orchestrator_grpc.server import start_orchestrator

log = logging.getLogger(__name__)

READY_LINE = "orchestrator worker running"
"""Printed once the worker pulls (tests and scripts wait for it)."""


class NoQueueConfigured(Exception):
    """A worker needs the shared queue: ``ORCH_NATS_URL`` is not set."""

    def __init__(self) -> None:
        super().__init__(
            f"orchestrator worker runs deliberations from NATS JetStream: set {NATS_URL_ENV} "
            "(e.g. nats://127.0.0.1:4222); without it `orchestrator serve` runs them in process"
        )


async def work(settings: Settings, plugins: PluginHost) -> None:
    """Run queued deliberations until SIGTERM or SIGINT, then stop as the module says."""
    queue = queue_from_settings(settings, name="orchestrator-worker")
    if queue is None:
        raise NoQueueConfigured
    observability = observability_for(settings)
    orchestrator = await start_orchestrator(settings, plugins, observability, queue)
    try:
        await observability.start(orchestrator)
        await _run_until_signal(orchestrator, settings, observability)
    finally:
        await orchestrator.close(settings.grace_period_seconds)
        await observability.close()
        log.info("stopped")


async def _run_until_signal(orchestrator: Orchestrator, settings: Settings, observability: Observability) -> None:
    concurrency = settings.queue_workers or 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consuming = asyncio.create_task(orchestrator.consume(concurrency), name="queue-workers")
    stopping = asyncio.create_task(stop.wait())
    try:
        log.info("running up to %d queued deliberation(s) at once", concurrency)
        print(f"{READY_LINE} ({concurrency} at once)", flush=True)
        if observability.metrics is not None:
            print(f"orchestrator metrics on {observability.metrics.url}", flush=True)
        await asyncio.wait([consuming, stopping], return_when=asyncio.FIRST_COMPLETED)
        if consuming.done() and (error := consuming.exception()) is not None:
            log.error("taking deliberations from the queue failed; stopping", exc_info=error)
            raise error
        log.info("signal received; no more deliberations taken, those held finish within %gs",
                 settings.grace_period_seconds)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for task in (consuming, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
