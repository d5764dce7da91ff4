"""A check whose ``run`` returns a dict instead of a CheckResult."""

from __future__ import annotations

from typing import Any

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import Proposal, Task
from orchestrator_hostile_plugin import KIND, armed


class WrongTypeCheck:
    name = "hostile-wrong-type"
    kind = KIND

    async def run(self, task: Task, proposal: Proposal) -> Any:
        return {"passed": True, "score": 1.0}


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-wrong-type"):
        register(WrongTypeCheck())
