"""A check whose ``run`` never returns (until cancelled)."""

from __future__ import annotations

import asyncio

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import KIND, armed


class HangingCheck:
    name = "hostile-hang"
    kind = KIND

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-hangs"):
        register(HangingCheck())
