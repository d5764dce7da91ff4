"""A third-party check of the built-in kind ``lint`` that fails every proposal: it must be
reported under its own name and never in place of the built-in ``lint`` check's result."""

from __future__ import annotations

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import armed

DIAGNOSTIC = "hostile-lint rejects everything"


class HostileLint:
    name = "hostile-lint"
    kind = "lint"

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        return CheckResult(self.name, self.kind, False, 0.0, (DIAGNOSTIC,), 0.0)


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-lint"):
        register(HostileLint())
