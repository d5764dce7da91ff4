"""Helpers shared by this package's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.models import Proposal
from orchestrator_core.settings import Settings
from orchestrator_core.testing import ConcurrencyProbe
from orchestrator_grpc.server import RunningServer

HANG_GUARD = 20.0
"""Seconds after which a wait that should have ended fails the test instead of hanging."""

LINT_SCORES = {"dev-1": 0.2, "dev-2": 0.9, "dev-3": 0.6}
UNREACHABLE = "cannot reach http://127.0.0.1:9/v1: connection refused"
REJECTED = "http://127.0.0.1:9/v1 rejected the model 'no-such-model'"

ServerFactory = Callable[..., AbstractAsyncContextManager[RunningServer]]
"""``async with serve_with(**setting_overrides) as server``."""


def lint_score(proposal: Proposal) -> float:
    return LINT_SCORES.get(proposal.author_id, 0.5)


@dataclass
class Doubles:
    """Probes of the test server's agents, for assertions."""

    hanging: ConcurrencyProbe
    stalling: ConcurrencyProbe
    gate: ConcurrencyProbe


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


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "database_path": tmp_path / "records.sqlite3",
        "grace_period_seconds": 5.0,
        "default_rounds": 1,
        "quorum": 2,
        "councils": {
            "DEV": {"backend": "scripted", "agents": 3},
            "ARCHITECT": {"backend": "scripted", "agents": 1},
            "QA": {"backend": "hanging", "agents": 2},
            "STALL": {"backend": "stalling", "agents": 2},
            "DEVOPS": {"backend": "unreachable", "agents": 3},
            "DATA": {"backend": "rejecting", "agents": 2},
            "GATED": {"backend": "gated", "agents": 3},
        },
    }
    values.update(overrides)
    return Settings(**values)
