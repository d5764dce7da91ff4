"""Helpers of the submit/watch/cancel tests: agents held until released, and their server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from grpc_test_support import HANG_GUARD, make_settings

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import Phase
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ConcurrencyProbe, PluginRegistrar, ScriptedBackend, ScriptedPlugin


class HeldProbe(ConcurrencyProbe):
    """Holds every agent call at its start until :attr:`release` is set; counts the calls
    that got past it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.passed = 0

    async def enter(self, phase: Phase) -> None:
        await super().enter(phase)
        await self.release.wait()
        self.passed += 1


def with_held_backend(host: PluginHost, plugins: PluginRegistrar, held: HeldProbe) -> PluginHost:
    """``host`` (the package's test doubles) and a "held" backend whose agents wait for ``held``."""
    plugins.register(ScriptedPlugin(ScriptedBackend(name="held", defaults={"probe": held})), name="held")
    return host


def queued_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """The package's test settings, and a HELD council of 3 held agents."""
    councils = {**make_settings(tmp_path).model_dump()["councils"], "HELD": {"backend": "held", "agents": 3}}
    return make_settings(tmp_path, councils=councils, **overrides)


async def watched(
    stub: pb_grpc.OrchestratorServiceStub, deliberation_id: str, after: int = 0
) -> list[pb.DeliberationEvent]:
    """Every event of a watch, to its end."""
    async with asyncio.timeout(HANG_GUARD):
        request = pb.WatchDeliberationRequest(deliberation_id=deliberation_id, after_sequence=after)
        return [event async for event in stub.WatchDeliberation(request)]
