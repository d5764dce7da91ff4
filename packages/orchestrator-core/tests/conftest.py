from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import CouncilSettings, Settings
from orchestrator_core.store import SQLiteStore
from orchestrator_core.testing import ScriptedBackend, ScriptedCheck, ScriptedPlugin

MakeOrchestrator = Callable[..., "Orchestrator"]


@pytest.fixture
async def make_orchestrator(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Builds started orchestrators over scripted plugins; closes them after the test."""
    made: list[Orchestrator] = []

    async def make(
        backend: ScriptedBackend | None = None,
        *checks: ScriptedCheck,
        **overrides: object,
    ) -> Orchestrator:
        host = PluginHost()
        host.register(ScriptedPlugin(backend or ScriptedBackend(), *checks), name="scripted-plugin")
        host.collect()
        values: dict[str, object] = {
            "councils": {"DEV": CouncilSettings(backend="scripted", agents=3),
                         "ARCHITECT": CouncilSettings(backend="scripted", agents=1)},
            "database_path": tmp_path / f"records-{len(made)}.sqlite3",
        }
        values.update(overrides)
        orchestrator = Orchestrator(Settings(**values), host, SQLiteStore(values["database_path"]))  # type: ignore[arg-type]
        await orchestrator.start()
        made.append(orchestrator)
        return orchestrator

    yield make
    for orchestrator in made:
        await orchestrator.close()
