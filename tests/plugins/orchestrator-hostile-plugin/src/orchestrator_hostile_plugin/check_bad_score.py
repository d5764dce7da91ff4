"""A check whose ``run`` returns a CheckResult scored 1.5, made past the class's own range
check (as a plugin that builds results with ``object.__new__`` or pickles them could)."""

from __future__ import annotations

from orchestrator_core.hookspecs import RegisterCheck, hookimpl
from orchestrator_core.models import CheckResult, Proposal, Task
from orchestrator_hostile_plugin import KIND, armed

SCORE = 1.5


class BadScoreCheck:
    name = "hostile-bad-score"
    kind = KIND

    async def run(self, task: Task, proposal: Proposal) -> CheckResult:
        result = object.__new__(CheckResult)
        fields = {"name": self.name, "kind": self.kind, "passed": True, "score": SCORE,
                  "diagnostics": ("out of range",), "duration_seconds": 0.0}
        for field, value in fields.items():
            object.__setattr__(result, field, value)
        return result


@hookimpl
def register_checks(register: RegisterCheck) -> None:
    if armed("hostile-check-bad-score"):
        register(BadScoreCheck())
