"""Helpers shared by this package's tests."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import AgentConfig, Critique, Phase, Proposal, Task
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ConcurrencyProbe, ScriptedAgent
from orchestrator_grpc.server import RunningServer

HANG_GUARD = 20.0
"""Seconds after which a wait that should have ended fails the test instead of hanging."""

LINT_SCORES = {"dev-1": 0.2, "dev-2": 0.9, "dev-3": 0.6}
UNREACHABLE = "cannot reach http://127.0.0.1:9/v1: connection refused"
REJECTED = "http://127.0.0.1:9/v1 rejected the model 'no-such-model'"

ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]
"""``async with serve_with(**setting_overrides) as server``."""


def orchestrator_command() -> str:
    """The installed ``orchestrator`` command, this interpreter's own first."""
    found = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or shutil.which("orchestrator")
    if found is None:
        pytest.fail("the orchestrator command is not installed (pip install -e packages/orchestrator-grpc)")
    return found


def lint_score(proposal: Proposal) -> float:
    return LINT_SCORES.get(proposal.author_id, 0.5)


@dataclass
class Doubles:
    """Probes of the test server's agents, for assertions."""

    hanging: ConcurrencyProbe
    stalling: ConcurrencyProbe
    gate: ConcurrencyProbe
    faults: ConcurrencyProbe


CRASH = "model crashed"
FAULTS: dict[str, dict[str, Any]] = {
    "ok": {},
    "raise": {"fail_in": {Phase.GENERATE: RuntimeError(CRASH)}},
    "hang": {"hang_in": frozenset({Phase.GENERATE})},
    "slow": {"delay_seconds": 0.05},
    "empty": {"proposal": "   "},
}


@dataclass
class GarbageAgent:
    """A test double: an agent whose every answer is a dict, not an AgentReply."""

    agent_id: str

    async def generate(self, task: Task) -> Any:
        return {"text": "not an AgentReply"}

    async def critique(self, task: Task, proposal: Proposal) -> Any:
        return {"text": "not an AgentReply"}

    async def revise(self, task: Task, proposal: Proposal, feedback: Sequence[Critique]) -> Any:
        return {"text": "not an AgentReply"}


@dataclass
class FaultyBackend:
    """A test double backend whose agents misbehave by council position: ``faults`` lists
    each position's behaviour, a key of FAULTS or "garbage"."""

    name: str
    faults: Sequence[str]
    probe: ConcurrencyProbe

    def create(self, config: AgentConfig) -> ScriptedAgent | GarbageAgent:
        kind = self.faults[config.index] if config.index < len(self.faults) else "ok"
        if kind == "garbage":
            return GarbageAgent(config.agent_id)
        return ScriptedAgent(agent_id=config.agent_id, probe=self.probe, **FAULTS[kind])


def request(
    role: str = "DEV", task: str = "Write a function that adds two numbers", **fields: Any
) -> pb.DeliberateRequest:
    return pb.DeliberateRequest(role=role, task=task, **fields)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds, failing after HANG_GUARD seconds."""
    try:
        async with asyncio.timeout(HANG_GUARD):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


GRPC_ACCEPTORS = {"AioServer._request_call", "AioServer._request_registered_call"}
"""grpc.aio's own tasks that wait for the next call of each method; one replaces each call taken."""


def tasks_started_since(before: set[asyncio.Task[Any]]) -> list[str]:
    """What tasks started since ``before`` are still running (grpc's acceptors aside)."""
    names = [getattr(task.get_coro(), "__qualname__", repr(task)) for task in asyncio.all_tasks() - before]
    return [name for name in names if name not in GRPC_ACCEPTORS]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_path": tmp_path / "records.sqlite3",
        "grace_period_seconds": 5.0,
        "health_refresh_seconds": 0.05,
        "default_rounds": 1,
        "quorum": 2,
        # "style" informs and decides nothing (weight 0): it fails every proposal (0.4).
        "check_weights": {"policy": 1.0, "lint": 1.0, "dryrun": 2.0, "style": 0.0},
        "councils": {
            "DEV": {"backend": "scripted", "agents": 3},
            "ARCHITECT": {"backend": "scripted", "agents": 1},
            "QA": {"backend": "hanging", "agents": 2},
            "STALL": {"backend": "stalling", "agents": 2},
            "DEVOPS": {"backend": "unreachable", "agents": 3},
            "DATA": {"backend": "rejecting", "agents": 2},
            "GATED": {"backend": "gated", "agents": 3},
            "FAULTY": {"backend": "faulty", "agents": 6},
            "BROKEN": {"backend": "broken", "agents": 3},
        },
    }
    values.update(overrides)
    return Settings(**values)
