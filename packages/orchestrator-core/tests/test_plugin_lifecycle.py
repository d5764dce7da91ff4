"""Plugins' lifecycle hooks: orchestrator_startup and orchestrator_shutdown, sync or awaitable,
each bounded by the lifecycle timeout; a failure is contained (logged with the plugin's name
and traceback, the plugin listed as failed and withdrawn) unless strict; shutdown runs every
plugin's hook and then each backend's aclose(), once, from the orchestrator's close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path

import pytest

from orchestrator_core.hookspecs import RegisterAgentBackend, hookimpl
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost, PluginLoadError
from orchestrator_core.records.factory import store_from_settings
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.testing import ScriptedBackend


class Lifecycle:
    """A plugin recording its lifecycle into ``events``; ``startup`` chooses how it starts."""

    def __init__(self, events: list[str], label: str, startup: str = "sync", backend: str = "") -> None:
        self.events = events
        self.label = label
        self.startup = startup
        self.backend = ScriptedBackend(name=backend) if backend else None

    @hookimpl
    def register_agents(self, register: RegisterAgentBackend) -> None:
        if self.backend is not None:
            register(self.backend)

    @hookimpl
    def orchestrator_startup(self) -> Awaitable[object] | None:
        if self.startup == "raise":
            raise RuntimeError(f"{self.label} cannot start")
        if self.startup == "hang":
            return asyncio.Event().wait()
        if self.startup == "async":
            return self._started()
        self.events.append(f"{self.label} started")
        return None

    async def _started(self) -> None:
        await asyncio.sleep(0)
        self.events.append(f"{self.label} started")

    @hookimpl
    async def orchestrator_shutdown(self) -> None:
        await asyncio.sleep(0)
        self.events.append(f"{self.label} stopped")


class BrokenShutdown:
    @hookimpl
    def orchestrator_shutdown(self) -> None:
        raise OSError("socket already gone")


class ClosingBackend(ScriptedBackend):
    closed: int = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_startup_hooks_run_sync_or_awaited() -> None:
    events: list[str] = []
    host = PluginHost()
    host.register(Lifecycle(events, "sync"), name="sync")
    host.register(Lifecycle(events, "async", startup="async"), name="async")
    host.collect()
    await host.startup()
    assert sorted(events) == ["async started", "sync started"]
    assert host.failed == ()


async def test_a_failing_or_hanging_startup_is_contained_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    host = PluginHost(lifecycle_timeout_seconds=0.05)
    host.register(Lifecycle(events, "good", backend="good"), name="good")
    host.register(Lifecycle(events, "bad", startup="raise", backend="bad"), name="bad")
    host.register(Lifecycle(events, "slow", startup="hang", backend="slow"), name="slow")
    host.collect()
    assert sorted(host.backends) == ["bad", "good", "slow"]
    with caplog.at_level(logging.ERROR, logger="orchestrator_core.plugins"):
        await host.startup()
    failed = {f.name: f.error for f in host.failed}
    assert failed == {
        "bad": "RuntimeError: bad cannot start",
        "slow": "TimeoutError: orchestrator_startup did not finish within 0.05s",
    }
    assert list(host.backends) == ["good"]  # the failed plugins' backends are withdrawn
    assert [p.name for p in host.plugins] == ["good"]
    logged = {r.getMessage().split()[1]: r for r in caplog.records}
    assert set(logged) == {"bad", "slow"}
    assert all(r.exc_info is not None for r in logged.values())
    await host.shutdown()  # the failed plugins still get their shutdown hook
    assert sorted(e for e in events if e.endswith("stopped")) == ["bad stopped", "good stopped", "slow stopped"]


async def test_strict_startup_fails_naming_every_failed_plugin() -> None:
    host = PluginHost(strict=True)
    host.register(Lifecycle([], "one", startup="raise"), name="one")
    host.register(Lifecycle([], "two", startup="raise"), name="two")
    host.collect()
    with pytest.raises(PluginLoadError) as raised:
        await host.startup()
    assert "one" in str(raised.value)
    assert "two" in str(raised.value)


async def test_shutdown_runs_every_hook_then_closes_backends_and_a_failure_does_not_stop_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    backend = ClosingBackend(name="closing")
    host = PluginHost()
    host.register(BrokenShutdown(), name="broken")
    host.register(Lifecycle(events, "one", backend=""), name="one")
    host.register(Lifecycle(events, "two", backend=""), name="two")

    class Registers:
        @hookimpl
        def register_agents(self, register: RegisterAgentBackend) -> None:
            register(backend)

    host.register(Registers(), name="registers")
    host.collect()
    with caplog.at_level(logging.ERROR, logger="orchestrator_core.plugins"):
        await host.shutdown()
    assert sorted(events) == ["one stopped", "two stopped"]
    assert backend.closed == 1
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert record.exc_info is not None


async def test_the_orchestrators_close_is_the_one_shutdown_path(tmp_path: Path) -> None:
    events: list[str] = []
    backend = ClosingBackend(name="scripted")
    host = PluginHost()
    host.register(Lifecycle(events, "plugin"), name="plugin")

    class Registers:
        @hookimpl
        def register_agents(self, register: RegisterAgentBackend) -> None:
            register(backend)

    host.register(Registers(), name="registers")
    host.collect()
    settings = Settings(
        councils={"DEV": CouncilSettings(backend="scripted", agents=2)},
        database_path=tmp_path / "records.sqlite3",
    )
    await host.startup()
    orchestrator = Orchestrator(settings, host, store_from_settings(settings))
    await orchestrator.start()
    await orchestrator.close()
    assert events == ["plugin started", "plugin stopped"]
    assert backend.closed == 1


def test_the_lifecycle_timeout_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator_core.plugins import load_plugins

    monkeypatch.setenv("ORCH_PLUGIN_LIFECYCLE_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("ORCH_PLUGINS_ENABLED", "none-installed")
    assert Settings().plugin_lifecycle_timeout_seconds == 2.5
    assert load_plugins(Settings()).lifecycle_timeout_seconds == 2.5
    assert Settings.model_fields["plugin_lifecycle_timeout_seconds"].default == 10.0
