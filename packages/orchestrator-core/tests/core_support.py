"""Shared by the core's tests: orchestrators over scripted plugins, a record store that
says when what a test waits for has happened, and waits that fail after a bound instead of
hanging (never a timed assertion: the bound only stops a hang)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest

from orchestrator_core.hookspecs import AgentBackend
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost
from orchestrator_core.records import DeliberationRecord
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.records.store import DeliberationStore
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin

HANG_GUARD = 30.0
"""Seconds before a wait that would never end fails the test instead of hanging it."""

MakeOrchestrator = Callable[..., Awaitable[Orchestrator]]


def scripted_councils(**dev_options: object) -> dict[str, CouncilSettings]:
    """A DEV council of three scripted agents (with ``dev_options``) and an ARCHITECT."""
    return {
        "DEV": CouncilSettings(backend="scripted", agents=3, options=dev_options),
        "ARCHITECT": CouncilSettings(backend="scripted", agents=1),
    }


@asynccontextmanager
async def started_orchestrators(settings_of: Callable[[int], Mapping[str, object]]) -> AsyncIterator[MakeOrchestrator]:
    """A maker of started orchestrators over a scripted plugin: the n-th takes the settings
    ``settings_of(n)``, then the keyword overrides it is made with. All close at the end."""
    made: list[Orchestrator] = []

    async def make(
        backend: AgentBackend | None = None, *checks: ScriptedCheck, **overrides: object
    ) -> Orchestrator:
        host = PluginHost()
        host.register(ScriptedPlugin(backend or ScriptedBackend(), *checks), name="scripted-plugin")
        host.collect()
        values: dict[str, Any] = {"councils": scripted_councils(), **settings_of(len(made)), **overrides}
        settings = Settings(**values)
        orchestrator = Orchestrator(settings, host, store_from_settings(settings))
        await orchestrator.start()
        made.append(orchestrator)
        return orchestrator

    try:
        yield make
    finally:
        for orchestrator in made:
            await orchestrator.close()


class WatchedStore:
    """A record store that tells the test when what it waits for has happened: a record
    ``wanted`` accepts was written, a retry looked up a request_id's holder, retention
    deleted records."""

    def __init__(
        self, store: DeliberationStore, wanted: Callable[[DeliberationRecord], bool] = lambda record: False
    ) -> None:
        self._store = store
        self._wanted = wanted
        self.written = asyncio.Event()
        self.polled = asyncio.Event()
        self.deleted = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def update(self, record: DeliberationRecord) -> bool:
        written = await self._store.update(record)
        if self._wanted(record):
            self.written.set()
        return written

    async def get_by_request(self, request_id: str) -> DeliberationRecord | None:
        holder = await self._store.get_by_request(request_id)
        self.polled.set()
        return holder

    async def delete_before(self, cutoff: float) -> int:
        deleted = await self._store.delete_before(cutoff)
        if deleted:
            self.deleted.set()
        return deleted


async def until(condition: Callable[[], bool], what: str) -> None:
    """Returns once ``condition()`` holds, polling it every millisecond (the interval only
    spares the CPU; nothing depends on it); fails the test, naming ``what``, when it still
    does not hold after HANG_GUARD seconds."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while not condition():
                await asyncio.sleep(0.001)
    except TimeoutError:
        pytest.fail(f"never happened within {HANG_GUARD:g}s: {what}")


async def happened(event: asyncio.Event, what: str) -> None:
    """Returns once ``event`` is set; fails the test, naming ``what``, after HANG_GUARD seconds."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            await event.wait()
    except TimeoutError:
        pytest.fail(f"never happened within {HANG_GUARD:g}s: {what}")


async def cancelled(run: asyncio.Task[Any]) -> None:
    """Cancels ``run`` and waits until it has unwound with its cancellation."""
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
