"""Run by the tracing tests in a process of its own, with the OTEL_* variables they choose:
starts a server on port 0 over the core's scripted test doubles, makes one Deliberate call,
shuts the server down (flushing any traces), and writes to the file named by its argument
what tracing it had and which OpenTelemetry modules the process imported.

Its standard output is left to the console exporter."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc
from orchestrator_core.models import AgentConfig, AgentReply, Task
from orchestrator_core.plugins import PluginHost
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ScriptedAgent, ScriptedBackend, ScriptedCheck, ScriptedPlugin
from orchestrator_grpc.server import running_server

TASK = "Write a function that adds two numbers"
LIBRARY_SPAN = "TRACED_PROCESS_LIBRARY_SPAN"
"""Set: each proposal is written inside a span of a library's own, made with OpenTelemetry's
global API, as an instrumented library (e.g. httpx) would."""


@dataclass
class LibraryAgent(ScriptedAgent):
    async def generate(self, task: Task) -> AgentReply:
        if not os.environ.get(LIBRARY_SPAN):
            return await super().generate(task)
        from opentelemetry import trace

        with trace.get_tracer("a-library").start_as_current_span("library work"):
            return await super().generate(task)


class LibraryBackend(ScriptedBackend):
    def create(self, config: AgentConfig) -> ScriptedAgent:
        return LibraryAgent(agent_id=config.agent_id)


async def main(results: Path) -> None:
    host = PluginHost()
    host.register(ScriptedPlugin(LibraryBackend(), ScriptedCheck(name="lint")), name="traced-process-doubles")
    host.collect()
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            host="127.0.0.1", port=0, database_path=Path(directory) / "records.sqlite3", quorum=1,
            default_rounds=1, councils={"DEV": {"backend": "scripted", "agents": 2}},
        )
        async with running_server(settings, plugins=host) as server:
            traced = server.observability.tracing is not None
            async with grpc.aio.insecure_channel(server.address) as channel:
                response = await pb_grpc.OrchestratorServiceStub(channel).Deliberate(
                    pb.DeliberateRequest(role="DEV", task=TASK), timeout=20
                )
    imported = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
    results.write_text(json.dumps({
        "traced": traced, "deliberation_id": response.deliberation_id, "opentelemetry_modules": imported,
    }))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
