"""Shared by the queued-deliberation tests: requests, deliveries the test settles by hand,
replicas on one PostgreSQL database, and bounded waits on the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from core_support import HANG_GUARD

from orchestrator_core.events import DeliberationEvent, DeliberationFinished
from orchestrator_core.models import Task, TaskConstraints
from orchestrator_core.orchestrator import DeliberationRequest, Orchestrator
from orchestrator_core.record_events import events_of
from orchestrator_core.records import DeliberationRecord, RecordStatus


def request(description: str = "Write fizzbuzz", **kwargs: Any) -> DeliberationRequest:
    constraints = kwargs.pop("constraints", TaskConstraints())
    return DeliberationRequest(Task(role="dev", description=description, constraints=constraints), **kwargs)


@dataclass
class ScriptedDelivery:
    """A delivery handed to ``run_queued`` by the test, which then reads how it was settled."""

    deliberation_id: str
    attempt: int = 1
    acked: bool = False
    nakked: bool = False
    kept_alive: int = 0

    async def in_progress(self) -> None:
        self.kept_alive += 1

    async def ack(self) -> None:
        self.acked = True

    async def nak(self) -> None:
        self.nakked = True


async def consuming(orchestrator: Orchestrator, concurrency: int = 2) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(orchestrator.consume(concurrency))


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def watched(
    orchestrator: Orchestrator, deliberation_id: str, after: int = 0
) -> list[tuple[int, DeliberationEvent]]:
    async with asyncio.timeout(HANG_GUARD):
        return [item async for item in orchestrator.watch(deliberation_id, after)]


async def record_when(
    orchestrator: Orchestrator, deliberation_id: str, condition: Callable[[DeliberationRecord], bool], what: str
) -> DeliberationRecord:
    """The record once ``condition`` holds of it (read from the store; the bound stops a hang)."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while True:
                record = await orchestrator.store.get(deliberation_id)
                if record is not None and condition(record):
                    return record
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"never happened within {HANG_GUARD:g}s: {what}")


def replay(record: DeliberationRecord) -> list[tuple[int, DeliberationEvent]]:
    events = events_of(record)
    finished = DeliberationFinished(record.status.value, record.error, record.error_kind)
    return [(i + 1, event) for i, event in enumerate([*events, finished])]




async def taken_run(orchestrator: Orchestrator) -> tuple[DeliberationRecord, ScriptedDelivery, asyncio.Task[None]]:
    """A deliberation submitted and run by ``orchestrator`` from a scripted delivery, once its
    record is RUNNING: the submitted record, the delivery, the run."""
    submitted = await orchestrator.submit(request())
    delivery = ScriptedDelivery(submitted.deliberation_id)
    run = asyncio.get_running_loop().create_task(orchestrator.run_queued(delivery))
    await record_when(orchestrator, submitted.deliberation_id, lambda r: r.status is RecordStatus.RUNNING, "taken")
    return submitted, delivery, run
